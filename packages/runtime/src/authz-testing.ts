/**
 * The authorisation suite every service runs against its real server
 * (issue 4): each role seeded in `roles` against each RPC, every RPC without
 * a key, and health and reflection without a key. The expected matrix is
 * computed from the roles table of the test database and the permission each
 * RPC declares; the suite never lists what a role may do.
 *
 * Test-runner agnostic (vitest cannot be loaded from this CommonJS build):
 * cases throw node:assert errors, and the test file registers them:
 *
 *   const suite = authorizationSuite({ definition, permissions, start: () => startHarness() });
 *   beforeAll(suite.start); afterAll(suite.stop);
 *   for (const c of suite.cases) it(c.name, c.run);
 *
 * Import from '@mcp/runtime/dist/authz-testing'.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Permission } from './auth/principal';
import { checkHealth, type HealthStatus } from './health-client';
import type { ServiceHarness } from './testing';

export interface AuthorizationSuiteOptions<D extends grpc.ServiceDefinition> {
  /** The generated service definition, e.g. `connectionlog.ConnectionLogServiceService`. */
  definition: D;
  /** The permission each RPC declares in its service.ts (`call.unary('<permission>', …)`): one entry per RPC. */
  permissions: { [M in keyof D]: Permission };
  /** Starts the service with the service's own test harness (authentication on, as configured in the repo). */
  start(): Promise<ServiceHarness<grpc.Client>>;
}

export interface AuthorizationCase {
  name: string;
  run(): Promise<void>;
}

export interface AuthorizationSuite {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** In the order they must run: the calls without a key come last (see below). */
  cases: AuthorizationCase[];
}

/** A cell of the matrix: 'admitted', or the code of a refusal (or of a failure that proves nothing). */
type Outcome = string;
const ADMITTED = 'admitted';

/**
 * Codes only a handler produces, so the guard admitted the call. Everything
 * else (the guard's UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED,
 * UNAVAILABLE, and failures such as INTERNAL or DEADLINE_EXCEEDED) is shown
 * as its code.
 */
const ADMITTED_CODES = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.ABORTED,
  grpc.status.OUT_OF_RANGE,
]);
const CALL_TIMEOUT_MS = 20_000;
/** Stands for a user without any role: denied everything. */
const NO_ROLE = '(no role)';
const HEALTH_SERVICE = 'grpc.health.v1.Health';

function outcomeOf(code: grpc.status): Outcome {
  return ADMITTED_CODES.has(code) ? ADMITTED : grpc.status[code];
}

/**
 * Calls the method once and settles on the first answer: the unary response,
 * or a stream's first message or final status. Streams are cancelled after
 * their first message (tails would otherwise stay open).
 */
function probe(client: grpc.Client, method: grpc.MethodDefinition<unknown, unknown>, request: unknown, metadata: grpc.Metadata): Promise<Outcome> {
  const options = { deadline: Date.now() + CALL_TIMEOUT_MS };
  const { path: rpcPath, requestSerialize, responseDeserialize } = method;
  return new Promise((resolve) => {
    if (!method.requestStream && !method.responseStream) {
      client.makeUnaryRequest(rpcPath, requestSerialize, responseDeserialize, request, metadata, options, (err) =>
        resolve(outcomeOf(err ? err.code : grpc.status.OK)),
      );
      return;
    }
    let call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>;
    if (method.requestStream && method.responseStream) {
      const duplex = client.makeBidiStreamRequest(rpcPath, requestSerialize, responseDeserialize, metadata, options);
      duplex.write(request);
      duplex.end();
      call = duplex;
    } else if (method.responseStream) {
      call = client.makeServerStreamRequest(rpcPath, requestSerialize, responseDeserialize, request, metadata, options);
    } else {
      throw new Error(`${rpcPath}: client streaming is not probed (no service has such an RPC)`);
    }
    let settled = false;
    const settle = (code: grpc.status) => {
      if (settled) return;
      settled = true;
      resolve(outcomeOf(code));
      call.cancel();
    };
    call.on('data', () => settle(grpc.status.OK));
    call.on('status', (status: grpc.StatusObject) => settle(status.code));
    // The status event carries the code; without a listener the error would be thrown.
    call.on('error', () => undefined);
  });
}

function bearer(token?: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

/** Every role in `roles` with its effective permissions: its own plus those of its parent roles, transitively. */
async function rolePermissions(h: ServiceHarness<grpc.Client>): Promise<Map<string, string[]>> {
  const { rows } = await h.pg.query<{ role: string; permissions: string[] }>(
    `WITH RECURSIVE lineage AS (
       SELECT name AS role, name AS ancestor FROM roles
       UNION
       SELECT l.role, r.parent_role FROM lineage l JOIN roles r ON r.name = l.ancestor WHERE r.parent_role IS NOT NULL
     )
     SELECT l.role, coalesce(array_agg(DISTINCT p) FILTER (WHERE p IS NOT NULL), '{}') AS permissions
       FROM lineage l JOIN roles a ON a.name = l.ancestor
       LEFT JOIN LATERAL jsonb_array_elements_text(a.permissions) AS p ON true
      GROUP BY l.role
      ORDER BY l.role`,
  );
  return new Map(rows.map((r) => [r.role, r.permissions]));
}

/** The reflection client of one protocol version, from the protos @grpc/reflection ships. */
function reflectionClient(version: 'v1' | 'v1alpha', address: string): grpc.Client {
  const protoDir = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, { keepCase: true, includeDirs: [protoDir] });
  const name = `grpc.reflection.${version}.ServerReflection`;
  const Reflection = grpc.makeGenericClientConstructor(definition[name] as grpc.ServiceDefinition, name);
  return new Reflection(address, grpc.credentials.createInsecure());
}

/** list_services over ServerReflectionInfo, with no metadata at all. */
function listServices(client: grpc.Client): Promise<string[]> {
  const call = (client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, Record<string, unknown>> }).ServerReflectionInfo();
  return new Promise((resolve, reject) => {
    call.once('data', (res: { list_services_response?: { service: Array<{ name: string }> } }) => {
      call.end();
      resolve((res.list_services_response?.service ?? []).map((s) => s.name).sort());
    });
    call.once('error', reject);
    call.write({ list_services: '' });
  });
}

export function authorizationSuite<D extends grpc.ServiceDefinition>(options: AuthorizationSuiteOptions<D>): AuthorizationSuite {
  const { definition, permissions } = options;
  const methods = Object.keys(definition) as Array<keyof D & string>;
  const serviceName = definition[methods[0]].path.split('/')[1];
  const rpcName = (method: keyof D & string) => definition[method].path.split('/')[2];
  let h: ServiceHarness<grpc.Client>;
  /** Role (or NO_ROLE) -> effective permissions, and -> its principal. */
  let grants: Map<string, string[]>;
  const principals = new Map<string, { userId: string; token: string }>();

  // The empty message: an INVALID_ARGUMENT answer shows the guard let the call through as well as OK does.
  const requestFor = (method: keyof D & string): unknown => definition[method].requestDeserialize(Buffer.alloc(0));

  const matrixCase = (method: keyof D & string): AuthorizationCase => ({
    name: `${rpcName(method)} (${permissions[method]}): each role admitted or PERMISSION_DENIED as the roles table says; one security event per denial`,
    run: async () => {
      const permission = permissions[method];
      const roles = [...grants.keys()];
      const expected = Object.fromEntries(
        roles.map((role) => {
          const held = grants.get(role)!;
          return [role, held.includes('*') || held.includes(permission) ? ADMITTED : 'PERMISSION_DENIED'];
        }),
      );
      const outcomes = await Promise.all(roles.map((role) => probe(h.client, definition[method], requestFor(method), bearer(principals.get(role)!.token))));
      assert.deepEqual(Object.fromEntries(roles.map((role, i) => [role, outcomes[i]])), expected);

      const { rows } = await h.pg.query<{ userId: string; permission: string; n: number }>(
        `SELECT user_id AS "userId", indicators->>'permission' AS permission, count(*)::int AS n
           FROM security_events
          WHERE event_type = 'permission_denied' AND indicators->>'method' = $1
          GROUP BY 1, 2`,
        [definition[method].path],
      );
      const roleOf = new Map([...principals].map(([role, p]) => [p.userId, role]));
      const recorded = Object.fromEntries(roles.map((role) => [role, [] as Array<{ permission: string; n: number }>]));
      for (const row of rows) (recorded[roleOf.get(row.userId) ?? `user ${row.userId}`] ??= []).push({ permission: row.permission, n: row.n });
      const expectedEvents = Object.fromEntries(roles.map((role) => [role, expected[role] === ADMITTED ? [] : [{ permission, n: 1 }]]));
      assert.deepEqual(recorded, expectedEvents);
    },
  });

  const unauthenticatedCase = (method: keyof D & string): AuthorizationCase => ({
    name: `${rpcName(method)} without a key: UNAUTHENTICATED, recorded as one failed_login`,
    run: async () => {
      assert.equal(await probe(h.client, definition[method], requestFor(method), bearer()), 'UNAUTHENTICATED');
      const { rows } = await h.pg.query(
        `SELECT count(*)::int AS n FROM security_events WHERE event_type = 'failed_login' AND indicators->>'method' = $1`,
        [definition[method].path],
      );
      assert.equal(rows[0].n, 1);
    },
  });

  return {
    start: async () => {
      h = await options.start();
      grants = await rolePermissions(h);
      grants.set(NO_ROLE, []);
      for (const role of grants.keys()) {
        principals.set(role, await h.principal(`authz-${role === NO_ROLE ? 'no-role' : role}`, role === NO_ROLE ? [] : [role]));
      }
    },
    stop: async () => h?.close(),
    cases: [
      {
        name: `the permission table names every RPC of ${serviceName}, and the roles table has the issue's roles`,
        run: async () => {
          assert.deepEqual(Object.keys(permissions).sort(), [...methods].sort());
          for (const role of ['admin', 'service', 'viewer', 'retention_operator', 'auditor']) assert.ok(grants.has(role), `role ${role} is seeded`);
        },
      },
      ...methods.map(matrixCase),
      {
        name: 'health answers without a key',
        run: async () => {
          const statuses: HealthStatus[] = await Promise.all(['', serviceName].map((name) => checkHealth(h.address, name)));
          assert.deepEqual(statuses, ['SERVING', 'SERVING']);
        },
      },
      {
        name: 'reflection (v1 and v1alpha) lists the services without a key',
        run: async () => {
          for (const version of ['v1', 'v1alpha'] as const) {
            const client = reflectionClient(version, h.address);
            try {
              assert.deepEqual(await listServices(client), [HEALTH_SERVICE, serviceName].sort(), version);
            } finally {
              client.close();
            }
          }
        },
      },
      // Last: from the fifth failure on, 127.0.0.1 is locked out (seed 004's
      // policy, on by default), which refuses every later keyed call but not
      // these, whose authentication fails first.
      ...methods.map(unauthenticatedCase),
    ],
  };
}
