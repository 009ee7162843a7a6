import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

/** grpc.health.v1.HealthCheckResponse.ServingStatus, as its enum name. */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

interface HealthClient extends grpc.Client {
  check(
    request: { service: string },
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, response: { status: ServingStatus }) => void,
  ): grpc.ClientUnaryCall;
}

// grpc-health-check ships the service definition (proto-loader, keepCase, enums as strings).
const HealthClientConstructor = grpc.makeClientConstructor(
  healthService as unknown as grpc.ServiceDefinition,
  'grpc.health.v1.Health',
) as unknown as new (address: string, credentials: grpc.ChannelCredentials) => HealthClient;

export function healthClient(address: string): HealthClient {
  return new HealthClientConstructor(address, grpc.credentials.createInsecure());
}

/** grpc.health.v1.Health/Check; "" asks about the server as a whole. */
export function checkHealth(client: HealthClient, service: string, deadlineMs: number): Promise<ServingStatus> {
  return new Promise((resolve, reject) => {
    client.check({ service }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res.status),
    );
  });
}
