import * as grpc from '@grpc/grpc-js';
import { retention } from '@mcp/proto';
import { badRequestDetail, retryInfoDetail, statusDetailsMetadata } from '@mcp/proto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badRequestViolations, createRetentionClient, retryDelayMs, uuidv7 } from '../src';

describe('status details (decoded without @mcp/runtime)', () => {
  it('reads what the services encode: RetryInfo and BadRequest', () => {
    const md = statusDetailsMetadata(grpc.status.RESOURCE_EXHAUSTED, 'slow down', [
      retryInfoDetail(1_234),
      badRequestDetail([{ field: 'events[3].latency_ms', description: 'must be >= 0' }]),
    ]);
    expect(retryDelayMs(md)).toBe(1_234);
    expect(badRequestViolations(md)).toEqual([{ field: 'events[3].latency_ms', description: 'must be >= 0' }]);
    expect(retryDelayMs(new grpc.Metadata())).toBeUndefined();
    const garbage = new grpc.Metadata();
    garbage.set('grpc-status-details-bin', Buffer.from([0xff, 0xff, 0xff]));
    expect(retryDelayMs(garbage)).toBeUndefined();
  });
});

describe('uuidv7', () => {
  it('is a version 7 UUID, monotonic within the process', () => {
    const ids = Array.from({ length: 10_000 }, () => uuidv7());
    expect(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))).toBe(true);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('TLS credentials', () => {
  let dir: string;
  let server: grpc.Server;
  let address: string;
  const file = (name: string) => path.join(dir, name);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-client-tls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
    for (const [name, cn, ext] of [
      ['server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      ['client', 'svc-agent-gateway', 'extendedKeyUsage=clientAuth'],
    ]) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
      fs.writeFileSync(file(`${name}.ext`), `${ext}\n`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
    }
    server = new grpc.Server();
    server.addService(retention.RetentionServiceService, {
      listPolicies: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<retention.ListPoliciesResponse>) => {
        // The calling service is named by its certificate's CN.
        const peer = (call.getAuthContext() as { sslPeerCertificate?: { subject?: { CN?: string } } }).sslPeerCertificate;
        cb(null, { policies: [retention.Policy.fromPartial({ table: peer?.subject?.CN ?? 'anonymous' })] });
      },
    } as unknown as retention.RetentionServiceServer);
    const creds = grpc.ServerCredentials.createSsl(fs.readFileSync(file('ca.pem')), [{ cert_chain: fs.readFileSync(file('server.pem')), private_key: fs.readFileSync(file('server.key')) }], true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => {
    server?.forceShutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('mutual TLS from file paths, from buffers, and from MCP_TLS_* environment variables', async () => {
    const viaPaths = createRetentionClient({ address, apiKey: null, credentials: { ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') } });
    expect((await viaPaths.listPolicies({})).policies[0].table).toBe('svc-agent-gateway');
    viaPaths.close();

    const viaBuffers = createRetentionClient({
      address,
      apiKey: null,
      credentials: { ca: fs.readFileSync(file('ca.pem')), cert: fs.readFileSync(file('client.pem')), key: fs.readFileSync(file('client.key')) },
    });
    expect((await viaBuffers.listPolicies({})).policies[0].table).toBe('svc-agent-gateway');
    viaBuffers.close();

    const saved = { ...process.env };
    Object.assign(process.env, { MCP_TLS_CA_FILE: file('ca.pem'), MCP_TLS_CERT_FILE: file('client.pem'), MCP_TLS_KEY_FILE: file('client.key'), MCP_RETENTION_ADDRESS: address });
    try {
      const viaEnv = createRetentionClient({ apiKey: null });
      expect(viaEnv.address).toBe(address);
      expect((await viaEnv.listPolicies({})).policies[0].table).toBe('svc-agent-gateway');
      viaEnv.close();
    } finally {
      for (const k of ['MCP_TLS_CA_FILE', 'MCP_TLS_CERT_FILE', 'MCP_TLS_KEY_FILE', 'MCP_RETENTION_ADDRESS']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it('refuses a server it cannot verify, and a certificate without its key', async () => {
    const untrusting = createRetentionClient({ address, apiKey: null, credentials: { cert: file('client.pem'), key: file('client.key') }, retry: { maxAttempts: 1 } });
    expect(((await untrusting.listPolicies({}).catch((e) => e)) as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    untrusting.close();
    expect(() => createRetentionClient({ address, credentials: { ca: file('ca.pem'), cert: file('client.pem') } })).toThrow(/cert and key/);
  });
});
