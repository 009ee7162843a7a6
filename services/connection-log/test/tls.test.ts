import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFixture, startHarness, type Fixture, type Harness } from './harness';

/** A CA, a server certificate for 127.0.0.1 and a client certificate whose CN is `clientName`, made with openssl. */
function makeCertificates(dir: string, clientName: string): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca');
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, cn, ext] of [['server', 'localhost', ['-extfile', 'server.ext']], ['client', clientName, []]] as const) {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...ext);
  }
}

let h: Harness;
let fx: Fixture;
let dir: string;
const read = (name: string) => fs.readFileSync(path.join(dir, name));

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-tls-'));
  makeCertificates(dir, 'ingest-service');
  const config = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../config/mcp.json'), 'utf8'));
  config.security.global_policy.require_tls = true;
  config.security.tls = {
    cert_file: path.join(dir, 'server.crt'),
    key_file: path.join(dir, 'server.key'),
    client_ca_file: path.join(dir, 'ca.crt'),
    require_client_certificate: true,
  };
  fs.writeFileSync(path.join(dir, 'mcp.json'), JSON.stringify(config));
  // The harness itself connects with the client certificate too (and its admin key, which takes precedence).
  h = await startHarness(undefined, { MCP_CONFIG: path.join(dir, 'mcp.json') }, grpc.credentials.createSsl(read('ca.crt'), read('client.key'), read('client.crt')));
  await h.pg.query(`INSERT INTO users (username, email) VALUES ('ingest-service', 'ingest@example.test')`);
  await h.pg.query(`INSERT INTO user_roles (user_id, role) SELECT id, 'service' FROM users WHERE username = 'ingest-service'`);
  fx = await createFixture(h, 'tls-owner');
});
afterAll(async () => {
  await h?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function record(credentials: grpc.ChannelCredentials, metadata = new grpc.Metadata()): Promise<string> {
  const client = new connectionlog.ConnectionLogServiceClient(h.address, credentials);
  const request = connectionlog.RecordEventsRequest.fromPartial({
    events: [{ connectionId: fx.connectionId, eventType: connectionlog.EventType.EVENT_TYPE_CONNECTED }],
  });
  return new Promise((resolve) =>
    client.recordEvents(request, metadata, { deadline: Date.now() + 5_000 }, (err) => {
      client.close();
      resolve(err ? grpc.status[err.code] : 'OK');
    }),
  );
}

/** A bare TLS handshake with the service: the protocol agreed, or the error that ended it. */
function handshake(version: tls.SecureVersion): Promise<{ protocol: string | null } | { error: NodeJS.ErrnoException }> {
  const [host, port] = h.address.split(':');
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port: Number(port),
      ca: read('ca.crt'),
      key: read('client.key'),
      cert: read('client.crt'),
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1',
      maxVersion: version,
      // OpenSSL's default security level refuses TLS < 1.2 on this side already; lower it so the refusal is the server's.
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    socket.once('secureConnect', () => {
      resolve({ protocol: socket.getProtocol() });
      socket.destroy();
    });
    socket.once('error', (error) => resolve({ error }));
  });
}

describe('TLS and mutual TLS', () => {
  it('refuses TLS 1.0 and 1.1 clients with a protocol_version alert, accepts TLS 1.2', async () => {
    for (const old of ['TLSv1', 'TLSv1.1'] as const) {
      const outcome = await handshake(old);
      // protocol_version (alert 70) is the server's version floor: a Node server without one fails this client later, with internal_error.
      expect('error' in outcome && outcome.error.code).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    }
    expect(await handshake('TLSv1.2')).toEqual({ protocol: 'TLSv1.2' });
  });

  it('a client certificate authenticates the service account it names, with no API key', async () => {
    const mtls = grpc.credentials.createSsl(read('ca.crt'), read('client.key'), read('client.crt'));
    expect(await record(mtls)).toBe('OK');
    // The audit trail names the certificate's account as the actor of an audited change.
    const agent = connectionlog.UpsertAgentRequest.fromPartial({ agent: { userId: fx.userId, name: 'via-mtls', isActive: true } });
    const client = new connectionlog.ConnectionLogServiceClient(h.address, mtls);
    await new Promise<void>((resolve, reject) => client.upsertAgent(agent, (err) => (client.close(), err ? reject(err) : resolve())));
    const { rows } = await h.pg.query(
      `SELECT u.username FROM audit_logs a JOIN users u ON u.id = a.user_id WHERE a.action_type = 'registry.agent_create' AND a.description LIKE 'agent via-mtls%'`,
    );
    expect(rows).toEqual([{ username: 'ingest-service' }]);
  });

  it('refuses a TLS client without a certificate, even with a valid API key', async () => {
    const tlsOnly = grpc.credentials.createSsl(read('ca.crt'));
    expect(await record(tlsOnly, h.metadata())).toBe('UNAVAILABLE');
  });

  it('refuses plaintext', async () => {
    expect(await record(grpc.credentials.createInsecure())).toBe('UNAVAILABLE');
  });
});
