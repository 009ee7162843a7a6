/**
 * A Python client (Debian's python3-grpcio, stubs generated now by
 * python3-grpc-tools from proto/) against the real service: what it sees must
 * match what the database holds.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFixture, startHarness, type Fixture, type Harness } from './harness';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const REPO_PROTO = path.resolve(__dirname, '../../../proto');
const PROTO_FILE = 'mcp/connectionlog/v1/connection_log.proto';
const CLIENT = path.join(__dirname, 'python', 'client.py');
const INSTALL_HINT = 'apt-get update && apt-get install -y python3-grpcio python3-grpc-tools';

interface Ack {
  id: string;
  timestamp_ms: number;
  already_stored: boolean;
}
interface RecordResult {
  stored_count: number;
  duplicate_count: number;
  acks: Ack[];
}
interface Listed {
  id: string;
  agent_id: string;
  connection_id: string;
  event_type: string;
  timestamp_ms: number;
  bytes_transferred: string | null;
  latency_ms: number | null;
  request_data: string | null;
}
interface PythonReport {
  python: string;
  grpc: string;
  keyed: { id: string; timestamp_ms: number; bytes_transferred: string; request_data: unknown };
  first: RecordResult;
  retry: RecordResult;
  pages: string[][];
  listed: Listed[];
  bad_request: {
    code: string;
    trailer_present: boolean;
    decoder: string;
    status_code: number;
    status_message: string;
    detail_types: string[];
    violations: Array<{ field: string; description: string }>;
  };
}

async function python(args: string[], env?: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  // Asynchronous on purpose: the service answering the client runs in this process.
  return run(PYTHON, args, { env: { ...process.env, ...env, PYTHONDONTWRITEBYTECODE: '1' }, timeout: 60_000 });
}

function failure(err: unknown): string {
  const e = err as { message?: string; stderr?: string; stdout?: string };
  return [e.message, e.stderr, e.stdout].filter(Boolean).join('\n');
}

/** Generates connection_log_pb2(_grpc).py into `outDir`; returns the bundled protoc version. */
async function generateStubs(outDir: string): Promise<string> {
  try {
    await python(['-c', 'import grpc, grpc_tools.protoc']);
  } catch (err) {
    throw new Error(
      `${PYTHON} cannot import grpc / grpc_tools, which the cross-language test needs. Install Debian's packages: ${INSTALL_HINT}\n${failure(err)}`,
    );
  }
  const { stdout: include } = await python(['-c', "import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))"]);
  const { stdout: version } = await python(['-m', 'grpc_tools.protoc', '--version']);
  const protocVersion = version.trim().replace(/^libprotoc\s+/, '');
  const [major, minor] = protocVersion.split('.').map(Number);

  let protoRoot = REPO_PROTO;
  if (major < 3 || (major === 3 && minor < 15)) {
    // Debian bookworm's python3-grpc-tools bundles libprotoc 3.5.1, which predates proto3
    // `optional`. protoc >= 3.15 represents `optional T x = N;` as a field in a synthetic
    // oneof `_x`: same wire format and the same Python API (HasField). Write that form.
    protoRoot = path.join(outDir, '.proto');
    const target = path.join(protoRoot, PROTO_FILE);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const source = fs.readFileSync(path.join(REPO_PROTO, PROTO_FILE), 'utf8');
    fs.writeFileSync(
      target,
      source.replace(/^(\s*)optional\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;/gm, '$1oneof _$3 { $2 $3 = $4; }'),
    );
  }
  try {
    await python([
      '-m',
      'grpc_tools.protoc',
      `-I${protoRoot}`,
      `-I${include.trim()}`,
      `--python_out=${outDir}`,
      `--grpc_python_out=${outDir}`,
      PROTO_FILE,
    ]);
  } catch (err) {
    throw new Error(`grpc_tools.protoc (libprotoc ${protocVersion}) failed on ${PROTO_FILE}:\n${failure(err)}`);
  }
  return protocVersion;
}

let h: Harness;
let fx: Fixture;
let stubDir: string;

beforeAll(async () => {
  stubDir = fs.mkdtempSync(path.join(os.tmpdir(), 'connection-log-py-'));
  h = await startHarness();
  fx = await createFixture(h, 'pypeer');
});

afterAll(async () => {
  await h?.close();
  if (stubDir) fs.rmSync(stubDir, { recursive: true, force: true });
});

describe('a Python gRPC client', () => {
  it('records, retries, pages and reads structured errors exactly as the database says', async () => {
    // In the test, not in a hook: a machine without python3-grpcio fails this test, with the fix in the message.
    const protocVersion = await generateStubs(stubDir);
    let report: PythonReport;
    try {
      const { stdout } = await python([CLIENT, h.address, fx.connectionId, fx.agentId], {
        PYTHONPATH: stubDir,
        MCP_API_KEY: h.adminToken,
      });
      report = JSON.parse(stdout.trim().split('\n').pop()!);
    } catch (err) {
      throw new Error(`the Python client failed (stubs from libprotoc ${protocVersion}):\n${failure(err)}`);
    }

    const { rows } = await h.pg.query(
      `SELECT id, connection_id, event_type, bytes_transferred::text AS bytes, latency_ms, request_data,
              (extract(epoch FROM timestamp) * 1000)::bigint::text AS ts_ms
       FROM agent_mcp_connection_logs WHERE connection_id = $1`,
      [fx.connectionId],
    );
    const byId = new Map<string, (typeof rows)[number][]>();
    for (const r of rows) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);

    // First call stored all three; the retry stored only the two events the server keyed itself.
    expect(report.first).toMatchObject({ stored_count: 3, duplicate_count: 0 });
    expect(report.retry).toMatchObject({ stored_count: 2, duplicate_count: 1 });
    expect(report.retry.acks.map((a) => a.already_stored)).toEqual([true, false, false]);
    expect(report.retry.acks[0]).toEqual({ ...report.first.acks[0], already_stored: true });

    // Every acknowledged key is in the table exactly once, with the acknowledged timestamp; nothing else is.
    const ackedIds = new Set([...report.first.acks, ...report.retry.acks].map((a) => a.id));
    expect(ackedIds.size).toBe(5);
    expect(rows).toHaveLength(5);
    for (const ack of [...report.first.acks, ...report.retry.acks]) {
      expect(byId.get(ack.id), ack.id).toHaveLength(1);
      expect(Number(byId.get(ack.id)![0].ts_ms)).toBe(ack.timestamp_ms);
    }

    // The client-chosen key, the 2^53+1 int64, zero latency and the JSON value survived exactly.
    const keyed = byId.get(report.keyed.id)![0];
    expect(Number(keyed.ts_ms)).toBe(report.keyed.timestamp_ms);
    expect(keyed.bytes).toBe('9007199254740993');
    expect(report.keyed.bytes_transferred).toBe('9007199254740993');
    expect(keyed.latency_ms).toBe(0);
    expect(keyed.request_data).toEqual(report.keyed.request_data);
    expect(keyed.event_type).toBe('usage_recorded');

    // Pages of at most two, no overlap, together exactly the connection's rows, newest first.
    expect(report.pages.map((p) => p.length)).toEqual([2, 2, 1]);
    const paged = report.pages.flat();
    expect(new Set(paged).size).toBe(paged.length);
    expect([...paged].sort()).toEqual(rows.map((r) => r.id).sort());
    const times = report.listed.map((e) => e.timestamp_ms);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const listedKeyed = report.listed.find((e) => e.id === report.keyed.id)!;
    expect(listedKeyed).toMatchObject({ bytes_transferred: '9007199254740993', latency_ms: 0, agent_id: fx.agentId });
    expect(JSON.parse(listedKeyed.request_data!)).toEqual(report.keyed.request_data);
    expect(report.listed.every((e) => e.agent_id === fx.agentId && e.connection_id === fx.connectionId)).toBe(true);

    // connection_id "nope": INVALID_ARGUMENT, and a google.rpc.Status trailer carrying a BadRequest.
    expect(report.bad_request).toMatchObject({ code: 'INVALID_ARGUMENT', trailer_present: true, status_code: 3 });
    expect(report.bad_request.detail_types).toContain('type.googleapis.com/google.rpc.BadRequest');
    expect(report.bad_request.violations.map((v) => v.field)).toEqual(['events[0].connection_id']);
    expect(rows).toHaveLength(5); // the rejected batch wrote nothing
  });
});
