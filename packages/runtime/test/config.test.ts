import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config';

const REPO_CONFIG = path.resolve(__dirname, '..', '..', '..', 'config', 'mcp.json');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-runtime-config-'));

function writeConfig(name: string, content: unknown): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('fills every omitted setting with the documented defaults', () => {
    const config = loadConfig({ path: writeConfig('empty.json', {}), env: {} });
    expect(config.security).toEqual({
      global_policy: {
        require_authentication: true,
        require_tls: true,
        min_tls_version: '1.2',
        require_mfa: true,
        session_timeout_minutes: 480,
        enable_audit_logging: true,
        enable_intrusion_detection: true,
      },
      network_security: {
        allowed_ip_ranges: ['10.0.0.0/8'],
        rate_limiting: { requests_per_minute: 100, block_on_exceed: true },
      },
      authentication: { max_failed_attempts: 5, failure_window_seconds: 3600, lockout_seconds: 900, identity_cache_ttl_ms: 5000 },
      tls: { require_client_certificate: false },
    });
    expect(config.servers).toEqual({});
    expect(config.audit.redaction).toEqual({ keys: [], patterns: [], replacement: '[REDACTED]' });
    expect(config.grpc).toEqual({
      max_receive_message_bytes: 4194304,
      max_send_message_bytes: 4194304,
      keepalive_time_ms: 30000,
      keepalive_timeout_ms: 10000,
      shutdown_grace_ms: 10000,
      health_probe_interval_ms: 2000,
    });
    expect(config).toMatchObject({ databaseUrl: undefined, grpcHost: '0.0.0.0', grpcPort: 50051, logLevel: 'info' });
  });

  it('completes a partly specified server from the defaults', () => {
    const config = loadConfig({
      path: writeConfig('server.json', { servers: { github: { resource_limits: { cpu_limit: 2 } } } }),
      env: {},
    });
    expect(config.servers.github.resource_limits).toEqual({ cpu_limit: 2, memory_limit_mb: 512, timeout_seconds: 30 });
    expect(config.servers.github.access_restrictions.denied_paths).toEqual([]);
    expect(config.servers.github.health).toMatchObject({ restart_policy: 'on-failure', stale_after_seconds: 90 });
  });

  it("validates the repository's development config/mcp.json", () => {
    const config = loadConfig({ path: REPO_CONFIG, env: {} });
    expect(config.security.global_policy.require_tls).toBe(false);
    expect(Object.keys(config.servers).length).toBeGreaterThan(0);
    expect(config.source).toMatch(/config\/mcp\.json$/);
  });

  it('finds the file through MCP_CONFIG', () => {
    const file = writeConfig('env.json', { grpc: { keepalive_time_ms: 45000 } });
    expect(loadConfig({ env: { MCP_CONFIG: file } }).grpc.keepalive_time_ms).toBe(45000);
  });

  it('applies environment overrides', () => {
    const config = loadConfig({
      path: writeConfig('env-overrides.json', {}),
      defaultPort: 50061,
      env: {
        DATABASE_URL: 'postgres://app@db:5432/mcp',
        GRPC_HOST: '127.0.0.1',
        LOG_LEVEL: 'debug',
        SHUTDOWN_GRACE_MS: '2500',
      },
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://app@db:5432/mcp',
      grpcHost: '127.0.0.1',
      grpcPort: 50061,
      logLevel: 'debug',
    });
    expect(config.grpc.shutdown_grace_ms).toBe(2500);
    expect(loadConfig({ path: writeConfig('port.json', {}), defaultPort: 50061, env: { GRPC_PORT: '0' } }).grpcPort).toBe(0);
  });

  it.each([
    [
      { security: { global_policy: { min_tls_version: '1.0' } } },
      '/security/global_policy/min_tls_version must be one of "1.2","1.3"',
    ],
    [{ security: { global_policy: { requre_tls: false } } }, '/security/global_policy/requre_tls is not a known setting'],
    [{ grpc: { keepalive_time_ms: '30s' } }, '/grpc/keepalive_time_ms must be integer'],
    [{ grpc: { shutdown_grace_ms: -1 } }, '/grpc/shutdown_grace_ms must be >= 0'],
    [
      { security: { network_security: { allowed_ip_ranges: ['10.0.0.0/33'] } } },
      '/security/network_security/allowed_ip_ranges/0 must match pattern',
    ],
    [{ servers: { 'Bad Name': {} } }, '/servers/Bad Name is not a valid name'],
    [
      { servers: { fs: { health: { restart_policy: 'sometimes' } } } },
      '/servers/fs/health/restart_policy must be one of "always","on-failure","never"',
    ],
    [{ audit: { redaction: { patterns: ['(unclosed'] } } }, '/audit/redaction/patterns/0 is not a valid regular expression'],
  ])('rejects %j naming the field', (content, expected) => {
    const file = writeConfig('bad.json', content);
    const err = configError(() => loadConfig({ path: file, env: {} }));
    expect(err.message).toContain(expected);
    expect(err.message.startsWith(`${file}: `)).toBe(true);
  });

  it('reports every problem at once', () => {
    const file = writeConfig('many.json', { grpc: { keepalive_time_ms: 1, max_send_message_bytes: 'big' }, extra: true });
    const err = configError(() => loadConfig({ path: file, env: {} }));
    expect(err.problems).toHaveLength(3);
  });

  it('rejects malformed JSON, a missing file and bad environment values', () => {
    expect(configError(() => loadConfig({ path: writeConfig('broken.json', '{"grpc": '), env: {} })).message).toContain(
      'not valid JSON',
    );
    expect(configError(() => loadConfig({ path: path.join(tmp, 'missing.json'), env: {} })).message).toContain('cannot read');
    const envErr = configError(() =>
      loadConfig({ path: writeConfig('ok.json', {}), env: { GRPC_PORT: '70000', LOG_LEVEL: 'loud', SHUTDOWN_GRACE_MS: 'soon' } }),
    );
    expect(envErr.problems).toEqual([
      'GRPC_PORT must be an integer from 0 to 65535 (got "70000")',
      'SHUTDOWN_GRACE_MS must be an integer from 0 to 3600000 (got "soon")',
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    ]);
  });
});
