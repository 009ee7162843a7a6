import * as fs from 'node:fs';
import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { connectionlog } from '@mcp/proto';
import { UsageError, type ParsedOptions } from '../args';
import { EVENT_HEADERS, EVENT_TYPE_NAMES, eventLine, eventRows, printJson, streamLine, table } from '../format';
import { callMetadata, connectionLogClient, describeServiceError, isServiceError, unary, type CallContext } from '../grpc';
import { eventFilter, eventTypeOption, FILTER_OPTIONS, positiveInteger, timeOption, type Command } from './common';

/** RecordEvents accepts at most this many events per call. */
export const RECORD_BATCH_SIZE = 500;
const JSON_FIELDS = ['request_data', 'response_data', 'error_data', 'requestData', 'responseData', 'errorData'];

export const eventsRecord: Command = {
  name: 'events record',
  summary: 'Records one event from the options, or every event of an NDJSON file (RecordEvents).',
  details: [
    '--file reads one ConnectionEvent per line as JSON, field names snake_case (proto) or camelCase;',
    'event_type may be a short name ("usage_recorded") or the enum name; request_data, response_data',
    'and error_data may be JSON values or JSON text. Lines are sent in batches of up to 500.',
    '--connection-id fills in lines without one. "-" reads standard input.',
    '',
    'example:',
    '  mcpctl events record --connection-id <uuid> --type usage_recorded --latency-ms 42 \\',
    '    --request-json \'{"method":"tools/call"}\' --response-json \'{"ok":true}\'',
  ],
  options: {
    'connection-id': { type: 'string', value: '<uuid>', description: 'the connection (required without --file)' },
    type: { type: 'string', value: '<type>', description: EVENT_TYPE_NAMES.join('|') },
    details: { type: 'string', value: '<text>', description: 'event details' },
    'latency-ms': { type: 'integer', value: '<ms>', description: 'latency' },
    'request-json': { type: 'string', value: '<json>', description: 'request payload (secrets are masked before storage)' },
    'response-json': { type: 'string', value: '<json>', description: 'response payload' },
    'error-json': { type: 'string', value: '<json>', description: 'error payload' },
    'old-status': { type: 'string', value: '<text>', description: 'status before (status_change)' },
    'new-status': { type: 'string', value: '<text>', description: 'status after (status_change)' },
    'bytes-transferred': { type: 'integer', value: '<n>', description: 'bytes transferred' },
    'session-id': { type: 'string', value: '<text>', description: 'session id' },
    id: { type: 'string', value: '<uuid>', description: 'event id, for idempotent retries (needs --timestamp)' },
    timestamp: { type: 'string', value: '<ISO>', description: 'when it happened; default: time of receipt' },
    file: { type: 'string', value: '<events.ndjson>', description: 'record every event of this NDJSON file ("-": stdin)' },
  },
  async run(opts, ctx, usage) {
    const file = opts.string('file');
    if (file !== undefined) {
      const conflicting = ['type', 'details', 'latency-ms', 'request-json', 'response-json', 'error-json', 'id', 'timestamp'].filter((o) =>
        opts.has(o),
      );
      if (conflicting.length) throw new UsageError(`--file cannot be combined with ${conflicting.map((o) => `--${o}`).join(', ')}`, usage);
      return recordFile(file, opts.string('connection-id'), ctx, usage);
    }
    if (!opts.has('connection-id') || !opts.has('type')) throw new UsageError('--connection-id and --type are required (or --file)', usage);
    const timestamp = opts.string('timestamp');
    const event = connectionlog.ConnectionEvent.fromPartial({
      id: opts.string('id') ?? '',
      connectionId: opts.string('connection-id'),
      eventType: eventTypeOption(opts.string('type')!, usage),
      eventDetails: opts.string('details'),
      oldStatus: opts.string('old-status'),
      newStatus: opts.string('new-status'),
      requestData: opts.string('request-json'),
      responseData: opts.string('response-json'),
      errorData: opts.string('error-json'),
      latencyMs: opts.integer('latency-ms'),
      bytesTransferred: opts.has('bytes-transferred') ? String(opts.integer('bytes-transferred')) : undefined,
      sessionId: opts.string('session-id'),
      timestamp: timestamp === undefined ? undefined : timeOption(timestamp, '--timestamp', usage),
    });
    const client = connectionLogClient(ctx.address);
    try {
      const res = await unary(client, client.recordEvents, connectionlog.RecordEventsRequest, { events: [event] }, ctx);
      if (ctx.json) return printJson(connectionlog.RecordEventsResponse.toJSON(res));
      const ack = res.acks[0];
      console.log(`event ${ack.id} at ${ack.timestamp?.toISOString()} ${ack.alreadyStored ? 'was already stored' : 'stored'}`);
    } finally {
      client.close();
    }
  },
};

/** One NDJSON line -> a complete ConnectionEvent (fromJSON accepts both field spellings). */
export function eventFromJsonLine(raw: unknown, defaultConnectionId: string | undefined, where: string): connectionlog.ConnectionEvent {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: expected a JSON object`);
  const object: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const key of JSON_FIELDS) {
    // A JSON value instead of JSON text: send its text.
    if (object[key] !== undefined && object[key] !== null && typeof object[key] !== 'string') object[key] = JSON.stringify(object[key]);
  }
  for (const key of ['event_type', 'eventType']) {
    const type = object[key];
    if (typeof type === 'string') {
      const value = connectionlog.eventTypeFromJSON(type.toUpperCase().startsWith('EVENT_TYPE_') ? type.toUpperCase() : `EVENT_TYPE_${type.toUpperCase()}`);
      if (value <= 0) throw new Error(`${where}: unknown event_type "${type}" (one of ${EVENT_TYPE_NAMES.join(', ')})`);
      object[key] = value;
    }
  }
  const event = connectionlog.ConnectionEvent.fromJSON(object);
  if (!event.connectionId && defaultConnectionId) event.connectionId = defaultConnectionId;
  return event;
}

async function* readBatches(file: string, defaultConnectionId: string | undefined, usage: string) {
  let input: NodeJS.ReadableStream;
  if (file === '-') {
    input = process.stdin;
  } else {
    if (!fs.existsSync(file)) throw new UsageError(`--file: ${file} does not exist`, usage);
    input = fs.createReadStream(file, 'utf8');
  }
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let batch: { event: connectionlog.ConnectionEvent; line: number }[] = [];
  let lineNo = 0;
  for await (const text of lines) {
    lineNo++;
    if (text.trim() === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${file}:${lineNo}: not valid JSON: ${(err as Error).message}`);
    }
    try {
      batch.push({ event: eventFromJsonLine(raw, defaultConnectionId, `${file}:${lineNo}`), line: lineNo });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (batch.length === RECORD_BATCH_SIZE) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

async function recordFile(file: string, defaultConnectionId: string | undefined, ctx: CallContext, usage: string): Promise<number> {
  const client = connectionLogClient(ctx.address);
  let stored = 0;
  let duplicates = 0;
  let batches = 0;
  try {
    for await (const batch of readBatches(file, defaultConnectionId, usage)) {
      let res: connectionlog.RecordEventsResponse;
      try {
        res = await unary(client, client.recordEvents, connectionlog.RecordEventsRequest, { events: batch.map((b) => b.event) }, ctx);
      } catch (err) {
        if (!isServiceError(err)) throw err;
        const first = batch[0].line;
        const last = batch[batch.length - 1].line;
        console.error(`batch ${batches + 1} (lines ${first}-${last}) was rejected; ${stored} events stored before it`);
        for (const line of describeServiceError(err, ctx.address)) {
          // Point each violation at its line: events[3].connection_id -> line of the 4th event.
          console.error(line.replace(/^(\s+)events\[(\d+)\]/, (m, indent: string, i: string) => `${indent}line ${batch[Number(i)]?.line ?? '?'}: ${m.trim()}`));
        }
        return 1;
      }
      batches++;
      stored += res.storedCount;
      duplicates += res.duplicateCount;
      if (ctx.json) printJson({ batch: batches, ...(connectionlog.RecordEventsResponse.toJSON(res) as object) });
      else console.error(`batch ${batches}: ${batch.length} events, ${res.storedCount} stored, ${res.duplicateCount} duplicate`);
    }
    if (!ctx.json) console.log(`${stored} stored, ${duplicates} duplicate (${batches} batch${batches === 1 ? '' : 'es'})`);
    return 0;
  } finally {
    client.close();
  }
}

export const eventsList: Command = {
  name: 'events list',
  summary: 'Lists events, newest first, paging through until --limit events (ListEvents).',
  options: {
    ...FILTER_OPTIONS,
    since: { type: 'string', value: '<ISO|30m|1h|7d>', description: 'from this time on (inclusive)' },
    until: { type: 'string', value: '<ISO|30m|1h|7d>', description: 'before this time (exclusive)' },
    limit: { type: 'integer', value: '<n>', description: 'at most this many events', default: '50' },
  },
  async run(opts, ctx, usage) {
    const filter = eventFilter(opts, usage);
    const limit = positiveInteger(opts, 'limit', usage) ?? 50;
    const client = connectionLogClient(ctx.address);
    try {
      const events: connectionlog.ConnectionEvent[] = [];
      let pageToken = '';
      do {
        const res = await unary(
          client,
          client.listEvents,
          connectionlog.ListEventsRequest,
          { filter, pageSize: Math.min(limit - events.length, 1000), pageToken },
          ctx,
        );
        events.push(...res.events);
        pageToken = res.nextPageToken;
      } while (pageToken && events.length < limit);
      if (ctx.json) return printJson(connectionlog.ListEventsResponse.toJSON({ events, nextPageToken: pageToken }));
      printEventTable(events, pageToken !== '');
    } finally {
      client.close();
    }
  },
};

export function printEventTable(events: connectionlog.ConnectionEvent[], more: boolean): void {
  if (events.length === 0) {
    console.log('no events');
    return;
  }
  console.log(table(EVENT_HEADERS, eventRows(events)));
  console.log(`\n${events.length} event${events.length === 1 ? '' : 's'}${more ? ' (more: raise --limit)' : ''}`);
}

export const eventsTail: Command = {
  name: 'events tail',
  summary: 'Prints events as they are committed (TailEvents), until Ctrl-C; then prints the cursor to resume from.',
  details: [
    'Reconnects by itself from the last cursor when the service is unavailable, so no event is',
    'printed twice. Without --cursor the tail starts with events committed from now on.',
    'With --json, one TailEventsResponse per line (NDJSON).',
  ],
  options: {
    ...FILTER_OPTIONS,
    cursor: { type: 'string', value: '<cursor>', description: 'resume after this cursor (printed by a previous tail)' },
  },
  run: (opts, ctx, usage) => tail(opts, ctx, usage),
};

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 10_000;
/** Ids of recently printed events, as a last guard against printing one twice. */
const SEEN_LIMIT = 10_000;

async function tail(opts: ParsedOptions, ctx: CallContext, usage: string): Promise<number> {
  const filter = eventFilter(opts, usage);
  let cursor = opts.string('cursor') ?? '';
  const client = connectionLogClient(ctx.address);
  const seen = new Set<string>();
  let call: grpc.ClientReadableStream<connectionlog.TailEventsResponse> | undefined;
  let stopping = false;
  let backoff = MIN_BACKOFF_MS;
  let wake: (() => void) | undefined;
  let received = 0;

  const stop = () => {
    if (stopping) process.exit(130); // a second Ctrl-C: leave at once
    stopping = true;
    call?.cancel();
    wake?.();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  process.stderr.write(`tailing ${ctx.address}${cursor ? ' from the given cursor' : ''} (Ctrl-C to stop)\n`);
  if (!ctx.json) console.log(streamLine(EVENT_HEADERS));

  let exitCode = 0;
  while (!stopping) {
    const outcome = await new Promise<{ err?: grpc.ServiceError }>((resolve) => {
      call = client.tailEvents(connectionlog.TailEventsRequest.fromPartial({ filter, cursor }), callMetadata(ctx));
      call.on('data', (msg: connectionlog.TailEventsResponse) => {
        backoff = MIN_BACKOFF_MS;
        cursor = msg.cursor;
        const event = msg.event;
        if (!event) return;
        const key = `${event.id}@${event.timestamp?.getTime()}`;
        if (seen.has(key)) return;
        seen.add(key);
        if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value!);
        received++;
        if (ctx.json) process.stdout.write(`${JSON.stringify(connectionlog.TailEventsResponse.toJSON(msg))}\n`);
        else process.stdout.write(`${eventLine(event)}\n`);
      });
      call.on('error', (err: grpc.ServiceError) => resolve({ err }));
      call.on('end', () => resolve({}));
    });
    if (stopping) break;
    const err = outcome.err;
    // UNAVAILABLE: the service is down or restarting. A stream that ends, or that the server
    // cancels, means it is shutting down. Anything else (bad filter or cursor) is final.
    const retryable = !err || err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED;
    if (!retryable) {
      for (const line of describeServiceError(err, ctx.address)) console.error(line);
      exitCode = 1;
      break;
    }
    const why = err ? `${grpc.status[err.code]}: ${err.details}` : 'the stream ended';
    process.stderr.write(`tail: ${why}; reconnecting in ${(backoff / 1000).toFixed(1)} s${cursor ? ' from the last cursor' : ''}\n`);
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, backoff);
    });
    wake = undefined;
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
  client.close();
  process.stderr.write(`\n${received} event${received === 1 ? '' : 's'} received\n`);
  if (cursor) {
    process.stderr.write(`cursor: ${cursor}\n`);
    process.stderr.write(`resume with: mcpctl events tail --cursor ${cursor}${filterHint(opts)}\n`);
  } else {
    process.stderr.write('no cursor yet (no event received)\n');
  }
  return exitCode;
}

function filterHint(opts: ParsedOptions): string {
  const parts: string[] = [];
  for (const id of opts.strings('connection-id')) parts.push(`--connection-id ${id}`);
  if (opts.has('agent-id')) parts.push(`--agent-id ${opts.string('agent-id')}`);
  for (const t of opts.strings('type')) parts.push(`--type ${t}`);
  if (opts.boolean('errors-only')) parts.push('--errors-only');
  return parts.length ? ` ${parts.join(' ')}` : '';
}
