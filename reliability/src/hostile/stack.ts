/**
 * The four built services as child processes against one database, plus a
 * plain grpc-js client per service for raw calls.
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ServiceProcess, SERVICE_PACKAGES, type ServiceName } from '../service-process';

export const SERVICE_NAMES = Object.keys(SERVICE_PACKAGES) as ServiceName[];

export interface ServiceStack {
  services: Record<ServiceName, ServiceProcess>;
  clients: Record<ServiceName, grpc.Client>;
  close(): Promise<void>;
}

export async function startServiceStack(databaseUrl: string): Promise<ServiceStack> {
  const checkpointDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-checkpoints-'));
  const env = { AUDIT_CHECKPOINT_KEY: 'hostile-input-suite-checkpoint-key-0123456789', AUDIT_CHECKPOINT_DIR: checkpointDir };
  const started = await Promise.all(SERVICE_NAMES.map((name) => ServiceProcess.start(name, { databaseUrl, env, servingTimeoutMs: 60_000 })));
  const services = Object.fromEntries(started.map((s) => [s.name, s])) as Record<ServiceName, ServiceProcess>;
  const clients = Object.fromEntries(started.map((s) => [s.name, new grpc.Client(s.address, grpc.credentials.createInsecure())])) as Record<
    ServiceName,
    grpc.Client
  >;
  return {
    services,
    clients,
    async close() {
      for (const client of Object.values(clients)) client.close();
      await Promise.all(started.map((s) => s.stop()));
      fs.rmSync(checkpointDir, { recursive: true, force: true });
    },
  };
}

export function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}
