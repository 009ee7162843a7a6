import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** grpc.health.v1 Check against `address`; `service` '' asks about the whole server. */
export function checkHealth(
  address: string,
  service = '',
  options: { deadlineMs?: number; credentials?: grpc.ChannelCredentials } = {},
): Promise<HealthStatus> {
  const client = new HealthClient(address, options.credentials ?? grpc.credentials.createInsecure());
  return new Promise<HealthStatus>((resolve, reject) => {
    client.check({ service }, { deadline: Date.now() + (options.deadlineMs ?? 2_000) }, (err: grpc.ServiceError | null, res: { status: HealthStatus }) => {
      client.close();
      if (err) reject(err);
      else resolve(res.status);
    });
  });
}

/** Polls until `address` reports `wanted` (an unreachable server counts as no answer yet), or rejects after `timeoutMs` (generous by default: start-up on a loaded CI host takes a while). */
export async function waitForHealth(
  address: string,
  wanted: HealthStatus,
  timeoutMs = 60_000,
  service = '',
  credentials?: grpc.ChannelCredentials,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const status = await checkHealth(address, service, { credentials }).catch(() => 'UNREACHABLE');
    if (status === wanted) return;
    if (Date.now() > until) throw new Error(`${address} not ${wanted} after ${timeoutMs} ms (last: ${status})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls until `address` reports SERVING, or rejects after `timeoutMs`. */
export function waitForServing(
  address: string,
  timeoutMs = 60_000,
  service = '',
  credentials?: grpc.ChannelCredentials,
): Promise<void> {
  return waitForHealth(address, 'SERVING', timeoutMs, service, credentials);
}
