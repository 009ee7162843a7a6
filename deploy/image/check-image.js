#!/usr/bin/env node
'use strict';
/**
 * The container image, checked without Docker (none here, and no registry to
 * pull the base images from). Replays ./Dockerfile's own instructions on this
 * host and runs the result the way the runtime stage would:
 *
 * build stage   The build context is the working tree filtered by
 *               .dockerignore. Every RUN runs verbatim (`/bin/sh -c`) inside
 *               a chroot whose /usr and /etc are this host's, read-only, at
 *               the Dockerfile's own paths (WORKDIR /src, /out, /tmp), with
 *               the stage's ENV and its npm cache mount.
 * runtime stage COPY --from=build --chown=0:0 /out /app into a second chroot
 *               whose root file system is read-only apart from a /tmp tmpfs,
 *               with this host's node bound at the ENTRYPOINT's path. Each
 *               program runs there with the ENTRYPOINT's arguments,
 *               cwd WORKDIR, as USER's uid/gid with no groups, no
 *               capabilities and no_new_privs.
 * programs      The usage of mcpctl, the retention CronJob client and the
 *               migration CLI; migrations on a fresh database; every service
 *               until grpc.health.v1 reports SERVING (then asked again by the
 *               image's own mcpctl), exporting OTLP to a receiver here, then
 *               an orderly exit on SIGTERM; the CronJob client against the
 *               running retention service.
 *
 * Not checked: the base images themselves (their Node is 22, this host's may
 * differ; distroless's libraries and user database), Docker's layer handling.
 *
 * Needs root (mount namespaces, chroot, setpriv) and util-linux; the database
 * it uses is chosen by adminDatabase() below.
 *
 *   node deploy/image/check-image.js [--keep]     (--keep: leave the work directory for inspection)
 */
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const { createRequire } = require('node:module');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { dockerignoreMatcher, parseDockerfile, parseEnv, parseExecForm, splitFlags } = require('./dockerfile');

const REPO_ROOT = path.resolve(__dirname, '../..');
/** Set for the copy of this script that runs inside the private mount namespace. */
const WORK_DIR_ENV = 'MCP_IMAGE_CHECK_DIR';
/** What both base images put on PATH. */
const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SERVING_TIMEOUT_MS = 90_000;
const EXIT_TIMEOUT_MS = 30_000;
const MCPCTL = 'packages/cli/dist/mcpctl.js';
const CRON = 'services/retention/dist/cron.js';
const DB_CLI = 'packages/db/dist/cli.js';

class CheckFailure extends Error {}

function parseOptions(argv) {
  const unknown = argv.filter((arg) => arg !== '--keep');
  if (unknown.length > 0) {
    console.error(`unknown option ${unknown.join(' ')}\nusage: check-image.js [--keep]`);
    process.exit(2);
  }
  return { keep: argv.includes('--keep') };
}

function requireHost() {
  const problems = [];
  if (process.platform !== 'linux') problems.push('runs on Linux only');
  if (process.getuid?.() !== 0) problems.push('needs root: it mounts in a private mount namespace, chroots and switches uid');
  for (const tool of ['unshare', 'setpriv', 'mount', 'umount', 'cp', 'chown', 'du']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) problems.push(`${tool} not found`);
  }
  if (problems.length > 0) throw new CheckFailure(`image check cannot run here: ${problems.join('; ')}`);
}

/** Outside the namespace: a work directory, the check inside `unshare --mount`, then removal. */
function runOutsideNamespace(options) {
  requireHost();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-image-check-'));
  // The image's uid must be able to reach the runtime root below it.
  fs.chmodSync(workDir, 0o755);
  const inner = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [WORK_DIR_ENV]: workDir },
  });
  // The mounts existed only inside that namespace: seen from here the directory holds plain files.
  if (options.keep) console.log(`kept ${workDir}`);
  else fs.rmSync(workDir, { recursive: true, force: true });
  process.exit(inner.status ?? 1);
}

function mount(...args) {
  execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

function bindReadOnly(source, target) {
  fs.mkdirSync(target, { recursive: true });
  mount('--rbind', source, target);
  mount('-o', 'remount,bind,ro', target);
}

/** A root file system of this host's /usr and /etc (read-only), /proc, /dev and an empty /tmp. */
function prepareRoot(root, tmpSize) {
  fs.mkdirSync(root, { recursive: true });
  bindReadOnly('/usr', path.join(root, 'usr'));
  bindReadOnly('/etc', path.join(root, 'etc'));
  for (const name of ['bin', 'sbin', 'lib', 'lib64']) {
    const host = `/${name}`;
    const stat = fs.lstatSync(host, { throwIfNoEntry: false });
    if (stat?.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(host), path.join(root, name));
    else if (stat?.isDirectory()) bindReadOnly(host, path.join(root, name));
  }
  for (const name of ['proc', 'dev']) {
    fs.mkdirSync(path.join(root, name));
    mount('--rbind', `/${name}`, path.join(root, name));
  }
  fs.mkdirSync(path.join(root, 'tmp'));
  mount('-t', 'tmpfs', '-o', `mode=1777,size=${tmpSize}`, 'tmpfs', path.join(root, 'tmp'));
}

function unsupported(instruction) {
  return new CheckFailure(
    `Dockerfile line ${instruction.line}: the check does not know how to reproduce "${instruction.keyword} ${instruction.args.slice(0, 80)}"; ` +
      'extend deploy/image/check-image.js',
  );
}

function proxyEnv() {
  // Docker forwards these to RUN as predefined build arguments.
  const names = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];
  return Object.fromEntries(names.filter((name) => process.env[name]).map((name) => [name, process.env[name]]));
}

function elapsed(since) {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

function tail(file, lines = 40) {
  return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** COPY . <dest>: the working tree minus .dockerignore, as `docker build .` sends it. */
function copyContext(instruction, destination) {
  const { flags, rest } = splitFlags(instruction.args);
  const [source, ...more] = rest.split(/\s+/);
  if (Object.keys(flags).length > 0 || source !== '.' || more.length !== 1) throw unsupported(instruction);
  const ignorePath = path.join(REPO_ROOT, '.dockerignore');
  const matcher = dockerignoreMatcher(fs.existsSync(ignorePath) ? fs.readFileSync(ignorePath, 'utf8') : '');
  let files = 0;
  fs.cpSync(REPO_ROOT, path.resolve(destination, more[0]), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (sourcePath) => {
      const rel = path.relative(REPO_ROOT, sourcePath).split(path.sep).join('/');
      if (rel === '') return true;
      const isDirectory = fs.lstatSync(sourcePath).isDirectory();
      // An excluded directory is still walked when a `!` pattern may re-include something below it.
      if (matcher.excludes(rel)) return isDirectory && matcher.hasExceptions;
      if (!isDirectory) files++;
      return true;
    },
  });
  return files;
}

function uncommittedChanges() {
  const status = spawnSync('git', ['-C', REPO_ROOT, 'status', '--porcelain'], { encoding: 'utf8' });
  return status.status === 0 ? status.stdout.split('\n').filter(Boolean).length : undefined;
}

/** RUN [--mount=type=cache,target=/root/.npm] <script>: `/bin/sh -c <script>` in the build root. */
function runBuildStep(instruction, root, workdir, env, logFile) {
  const { flags, rest: script } = splitFlags(instruction.args);
  const cacheMounts = [];
  for (const [flag, value] of Object.entries(flags)) {
    const spec = Object.fromEntries(value.split(',').map((pair) => pair.split('=')));
    // The one cache the Dockerfile mounts, npm's, is served by this host's npm cache.
    if (flag !== 'mount' || spec.type !== 'cache' || spec.target !== '/root/.npm') throw unsupported(instruction);
    const hostCache = process.env.npm_config_cache || path.join(os.homedir(), '.npm');
    fs.mkdirSync(hostCache, { recursive: true });
    const target = path.join(root, spec.target);
    fs.mkdirSync(target, { recursive: true });
    mount('--bind', hostCache, target);
    cacheMounts.push(target);
  }
  const log = fs.openSync(logFile, 'w');
  const started = Date.now();
  const result = spawnSync('unshare', [`--root=${root}`, `--wd=${workdir}`, '/bin/sh', '-c', script], { env, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  for (const target of cacheMounts) execFileSync('umount', [target]);
  const summary = script.replace(/\s+/g, ' ').slice(0, 90);
  if (result.status !== 0) {
    throw new CheckFailure(`build: RUN at Dockerfile line ${instruction.line} failed (exit ${result.status ?? result.signal}): ${summary}\n${tail(logFile)}`);
  }
  const turboCached = /Cached:\s+(\d+ cached, \d+ total)/.exec(fs.readFileSync(logFile, 'utf8'));
  console.log(`  RUN ${summary}  ok (${elapsed(started)}${turboCached ? `; turbo: ${turboCached[1]}` : ''})`);
}

function replayBuildStage(stage, root, logDir) {
  prepareRoot(root, '1g');
  const env = { PATH: BASE_PATH, HOME: '/root', ...proxyEnv() };
  let workdir = '/';
  let step = 0;
  for (const instruction of stage.instructions) {
    if (instruction.keyword === 'WORKDIR') {
      workdir = path.posix.resolve(workdir, instruction.args);
      fs.mkdirSync(path.join(root, workdir), { recursive: true });
    } else if (instruction.keyword === 'ENV') {
      Object.assign(env, parseEnv(instruction.args));
    } else if (instruction.keyword === 'COPY') {
      const started = Date.now();
      const files = copyContext(instruction, path.join(root, workdir));
      const changes = uncommittedChanges();
      const origin = changes === undefined ? '' : `; the working tree, ${changes} path(s) differing from HEAD`;
      console.log(`  COPY ${instruction.args}  ${files} files after .dockerignore (${elapsed(started)}${origin})`);
    } else if (instruction.keyword === 'RUN') {
      runBuildStep(instruction, root, workdir, env, path.join(logDir, `build-${++step}.log`));
    } else {
      throw unsupported(instruction);
    }
  }
}

/** The runtime stage's file system and settings: WORKDIR, COPY --from, ENV, USER, EXPOSE, ENTRYPOINT, CMD. */
function replayRuntimeStage(stage, stageRoots, root) {
  fs.mkdirSync(root, { recursive: true });
  // A bind mount of itself, so that it can be made read-only once assembled.
  mount('--bind', root, root);
  prepareRoot(root, '64m');
  const image = { workdir: '/', env: {}, user: undefined, entrypoint: [], cmd: [], exposed: [] };
  for (const instruction of stage.instructions) {
    switch (instruction.keyword) {
      case 'WORKDIR':
        image.workdir = path.posix.resolve(image.workdir, instruction.args);
        fs.mkdirSync(path.join(root, image.workdir), { recursive: true });
        break;
      case 'COPY': {
        const { flags, rest } = splitFlags(instruction.args);
        const [source, destination, ...more] = rest.split(/\s+/);
        const unknownFlags = Object.keys(flags).filter((flag) => flag !== 'from' && flag !== 'chown');
        if (!flags.from || !stageRoots[flags.from] || more.length > 0 || unknownFlags.length > 0) throw unsupported(instruction);
        const target = path.join(root, path.posix.resolve(image.workdir, destination));
        fs.mkdirSync(target, { recursive: true });
        execFileSync('cp', ['-a', `${path.join(stageRoots[flags.from], source)}/.`, `${target}/`]);
        if (flags.chown) execFileSync('chown', ['-R', '-h', flags.chown, target]);
        break;
      }
      case 'ENV':
        Object.assign(image.env, parseEnv(instruction.args));
        break;
      case 'USER':
        if (!/^\d+(:\d+)?$/.test(instruction.args)) throw unsupported(instruction);
        image.user = instruction.args;
        break;
      case 'EXPOSE':
        image.exposed = instruction.args.split(/\s+/);
        break;
      case 'ENTRYPOINT':
        image.entrypoint = parseExecForm(instruction);
        break;
      case 'CMD':
        image.cmd = parseExecForm(instruction);
        break;
      default:
        throw unsupported(instruction);
    }
  }
  if (!image.user || image.user.split(':')[0] === '0') throw new CheckFailure('the runtime stage does not set a non-root USER');
  if (image.entrypoint.length === 0) throw new CheckFailure('the runtime stage has no ENTRYPOINT');
  // This host's node stands in for the base image's, at the path the ENTRYPOINT names.
  const nodeAtEntrypoint = path.join(root, image.entrypoint[0]);
  fs.mkdirSync(path.dirname(nodeAtEntrypoint), { recursive: true });
  fs.writeFileSync(nodeAtEntrypoint, '');
  mount('--bind', '-o', 'ro', process.execPath, nodeAtEntrypoint);
  mount('-o', 'remount,bind,ro', root);
  return image;
}

function du(target) {
  return execFileSync('du', ['-sh', target], { encoding: 'utf8' }).split('\t')[0];
}

/** The largest packages in node_modules (scoped ones counted per package). */
function largestPackages(nodeModules, count) {
  const dirs = [];
  for (const entry of fs.readdirSync(nodeModules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const full = path.join(nodeModules, entry.name);
    if (entry.name.startsWith('@')) {
      for (const scoped of fs.readdirSync(full, { withFileTypes: true })) if (scoped.isDirectory()) dirs.push(path.join(full, scoped.name));
    } else {
      dirs.push(full);
    }
  }
  const sizes = execFileSync('du', ['-sk', ...dirs], { encoding: 'utf8', maxBuffer: 16 << 20 })
    .trim()
    .split('\n')
    .map((line) => line.split('\t'))
    .map(([kb, dir]) => ({ kb: Number(kb), name: path.relative(nodeModules, dir) }))
    .sort((a, b) => b.kb - a.kb);
  return sizes.slice(0, count).map(({ kb, name }) => `${name} ${(kb / 1024).toFixed(1)}M`);
}

/**
 * Entries not owned by uid 0 / gid 0 or writable by group or others, and
 * native addons (`*.node`, which would tie the tree to the Node build and libc
 * it was installed with).
 */
function scanTree(dir) {
  const ownership = [];
  const addons = [];
  let entries = 0;
  const walk = (current) => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      const stat = fs.lstatSync(full);
      entries++;
      if (stat.uid !== 0 || stat.gid !== 0 || (!stat.isSymbolicLink() && (stat.mode & 0o022) !== 0)) {
        ownership.push(`${path.relative(dir, full)} (uid ${stat.uid}, gid ${stat.gid}, mode ${(stat.mode & 0o7777).toString(8)})`);
      }
      if (entry.isFile() && entry.name.endsWith('.node')) addons.push(path.relative(dir, full));
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return { entries, ownership, addons };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An OTLP/HTTP endpoint that accepts everything and remembers which paths were posted to. */
async function startOtlpReceiver() {
  const paths = new Set();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      paths.add(req.url);
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: (name) => `http://127.0.0.1:${server.address().port}/${name}`, paths, close: () => server.close() };
}

class ImageRunner {
  constructor(root, image, logDir) {
    this.root = root;
    this.image = image;
    this.logDir = logDir;
    this.children = new Set();
    this.logs = 0;
  }

  /** The argv a container of this image runs for `args` (the CMD, or Kubernetes `args`). */
  argv(args) {
    const [uid, gid = uid] = this.image.user.split(':');
    const drop = ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all'];
    return [`--root=${this.root}`, `--wd=${this.image.workdir}`, ...drop, ...this.image.entrypoint, ...args];
  }

  /** Starts a program; `exit` settles with { code, signal }. Output goes to a log file. */
  start(args, env = {}) {
    const logFile = path.join(this.logDir, `run-${++this.logs}-${path.basename(args[0] ?? 'node')}.log`);
    fs.writeFileSync(logFile, '');
    const child = spawn('unshare', this.argv(args), {
      env: { PATH: BASE_PATH, ...this.image.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = { stdout: '', stderr: '' };
    for (const stream of ['stdout', 'stderr']) {
      child[stream].on('data', (chunk) => {
        output[stream] += chunk;
        fs.appendFileSync(logFile, chunk);
      });
    }
    this.children.add(child);
    const exit = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.children.delete(child);
        resolve({ code, signal, ...output });
      });
    });
    return { child, exit, logFile };
  }

  /** Runs a program to completion (killed after timeoutMs). */
  async run(args, env = {}, timeoutMs = 60_000) {
    const started = Date.now();
    const { child, exit, logFile } = this.start(args, env);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const result = await exit;
    clearTimeout(timer);
    return { ...result, logFile, ms: Date.now() - started };
  }

  killAll() {
    for (const child of this.children) child.kill('SIGKILL');
  }
}

/** One line of the closing table; failures also carry the program's last output. */
class Results {
  constructor() {
    this.rows = [];
  }

  record(program, ok, detail, logFile) {
    this.rows.push({ program, ok, detail });
    console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${program}: ${detail}`);
    if (!ok && logFile && fs.existsSync(logFile)) console.log(tail(logFile, 30).replace(/^/gm, '       | '));
    return ok;
  }

  get failed() {
    return this.rows.filter((row) => !row.ok);
  }
}

function firstLine(text) {
  return text.trim().split('\n')[0] ?? '';
}

async function checkUsage(runner, results) {
  const cases = [
    { args: [MCPCTL], stream: 'stdout', usage: 'usage: mcpctl' },
    { args: [CRON], stream: 'stderr', usage: 'usage: cron.js' },
    { args: [DB_CLI], stream: 'stderr', usage: 'usage: mcp-db' },
  ];
  for (const { args, stream, usage } of cases) {
    const result = await runner.run(args);
    const line = result[stream].split('\n').find((text) => text.startsWith(usage));
    const ok = result.code === 2 && line !== undefined;
    results.record(args.join(' '), ok, `exit ${result.code ?? result.signal}, "${line ?? firstLine(result.stdout + result.stderr)}" (${result.ms} ms)`, result.logFile);
  }
}

/** One statement on the admin connection, through the tree's own pg. */
async function adminQuery(app, adminUrl, sql) {
  const { Client } = createRequire(path.join(app, 'package.json'))('pg');
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * grpc.health.v1 Check on "" (the whole server), with the tree's own grpc-js
 * and health definition. Polling in this process: a program per poll would
 * cost a Node start each.
 */
function healthChecker(app) {
  const treeRequire = createRequire(path.join(app, 'package.json'));
  const grpc = treeRequire('@grpc/grpc-js');
  const { service } = treeRequire('grpc-health-check');
  const HealthClient = grpc.makeClientConstructor(service, 'grpc.health.v1.Health');
  return (address) =>
    new Promise((resolve) => {
      const client = new HealthClient(address, grpc.credentials.createInsecure());
      client.check({ service: '' }, { deadline: Date.now() + 2000 }, (err, response) => {
        client.close();
        resolve(err ? `${grpc.status[err.code]}: ${err.details}` : response.status);
      });
    });
}

/**
 * Starts a service, waits until it reports SERVING, asks again with the
 * image's mcpctl, runs `whileServing`, then stops it with SIGTERM.
 */
async function checkService(runner, results, otlp, checkHealth, service, port, databaseUrl, whileServing) {
  const program = `services/${service}/dist/main.js`;
  const started = Date.now();
  const { child, exit, logFile } = runner.start([program], {
    DATABASE_URL: databaseUrl,
    GRPC_PORT: String(port),
    SHUTDOWN_GRACE_MS: '5000',
    // The pod mounts a volume for this; here /tmp, the only writable place, stands in for it.
    AUDIT_CHECKPOINT_DIR: '/tmp/audit-checkpoints',
    OTEL_SERVICE_NAME: service,
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint(service),
    OTEL_METRIC_EXPORT_INTERVAL: '1000',
  });
  let exited;
  exit.then((result) => (exited = result));
  let status = 'no answer';
  while (exited === undefined && status !== 'SERVING' && Date.now() - started < SERVING_TIMEOUT_MS) {
    status = await checkHealth(`127.0.0.1:${port}`);
    if (status !== 'SERVING') await sleep(250);
  }
  const servingAfter = elapsed(started);
  if (exited !== undefined || status !== 'SERVING') {
    child.kill('SIGKILL');
    const how = exited !== undefined ? `exited (${exited.code ?? exited.signal}) before SERVING` : `not SERVING after ${servingAfter}`;
    return results.record(program, false, `${how}; last health answer: ${status}`, logFile);
  }
  const cli = await runner.run([MCPCTL, 'health', '--address', `127.0.0.1:${port}`]);
  const cliAnswer = firstLine(cli.stdout) || firstLine(cli.stderr);
  await whileServing?.();
  const stopping = Date.now();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
  const result = await exit;
  clearTimeout(timer);
  const metricsPath = `/${service}/v1/metrics`;
  const exported = otlp.paths.has(metricsPath);
  const cliOk = cli.code === 0 && / SERVING$/.test(cliAnswer);
  const ok = cliOk && result.code === 0 && exported;
  return results.record(
    program,
    ok,
    `SERVING after ${servingAfter}; mcpctl health: exit ${cli.code ?? cli.signal} "${cliAnswer}"; ` +
      `OTLP metrics ${exported ? 'received' : `NOT received at ${metricsPath}`}; ` +
      `SIGTERM -> exit ${result.code ?? result.signal} in ${elapsed(stopping)}`,
    logFile,
  );
}

/** The retention CronJob client against the running service, without an API key: a precise refusal, and one trace. */
async function checkCronAgainstRetention(runner, results, otlp, port) {
  const result = await runner.run([CRON, 'run', '--policy', 'all', '--deadline-ms', '10000'], {
    RETENTION_ADDRESS: `127.0.0.1:${port}`,
    OTEL_SERVICE_NAME: 'retention-cron',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint('retention-cron'),
  });
  let answer;
  try {
    answer = JSON.parse(result.stdout.trim());
  } catch {
    answer = undefined;
  }
  const traced = otlp.paths.has('/retention-cron/v1/traces');
  const ok = result.code === 1 && answer?.code === 'UNAUTHENTICATED' && Boolean(answer?.trace_id) && traced;
  results.record(
    `${CRON} run --policy all (no API key)`,
    ok,
    `exit ${result.code ?? result.signal}, ${answer ? `code ${answer.code}, trace ${answer.trace_id ?? 'none'}` : `"${firstLine(result.stdout + result.stderr)}"`}; ` +
      `OTLP trace ${traced ? 'received' : 'NOT received'} (${result.ms} ms)`,
    result.logFile,
  );
}

/**
 * A PostgreSQL server to create the check's database in: IMAGE_CHECK_DATABASE_URL,
 * else TEST_DATABASE_URL, else the local one on 127.0.0.1:5432 when it answers,
 * else (a fresh machine without one) the embedded PostgreSQL the tests fall back to.
 */
async function adminDatabase(app, workDir) {
  const configured = process.env.IMAGE_CHECK_DATABASE_URL || process.env.TEST_DATABASE_URL;
  if (configured) return { url: configured, stop: async () => undefined };
  const local = 'postgres://postgres@127.0.0.1:5432/postgres';
  try {
    await adminQuery(app, local, 'SELECT 1');
    return { url: local, stop: async () => undefined };
  } catch {
    const { startEmbeddedPostgres } = require(path.join(REPO_ROOT, 'packages/db/dist'));
    console.log('  no PostgreSQL on 127.0.0.1:5432: starting the embedded one');
    const pg = await startEmbeddedPostgres({ dataDir: path.join(workDir, 'embedded-postgres') });
    return { url: pg.url, stop: () => pg.stop() };
  }
}

async function checkWithDatabase(app, runner, results, checkHealth, serviceNames, workDir) {
  const server = await adminDatabase(app, workDir);
  try {
    await checkOnServer(app, runner, results, checkHealth, serviceNames, server.url);
  } finally {
    await server.stop();
  }
}

async function checkOnServer(app, runner, results, checkHealth, serviceNames, adminUrl) {
  const database = `mcp_image_check_${process.pid}_${Date.now()}`;
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const databaseUrl = url.toString();
  try {
    await adminQuery(app, adminUrl, `CREATE DATABASE "${database}"`);
  } catch (err) {
    throw new CheckFailure(`cannot create a database at ${adminUrl.replace(/\/\/[^@/]*@/, '//…@')}: ${err.message}`);
  }
  const otlp = await startOtlpReceiver();
  try {
    console.log(`  database ${database} (created for this check, dropped after)`);
    const migrate = await runner.run([DB_CLI, 'up'], { DATABASE_URL: databaseUrl }, 120_000);
    const migrated = results.record(`${DB_CLI} up`, migrate.code === 0, `exit ${migrate.code ?? migrate.signal}, "${firstLine(migrate.stdout + migrate.stderr).slice(0, 100)}" (${migrate.ms} ms)`, migrate.logFile);
    if (!migrated) return;
    const ports = await Promise.all(serviceNames.map(() => freePort()));
    await Promise.all(
      serviceNames.map((service, i) =>
        checkService(runner, results, otlp, checkHealth, service, ports[i], databaseUrl, service === 'retention' ? () => checkCronAgainstRetention(runner, results, otlp, ports[i]) : undefined),
      ),
    );
  } finally {
    otlp.close();
    await adminQuery(app, adminUrl, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  }
}

async function runInsideNamespace(workDir) {
  const started = Date.now();
  const { globalArgs, stages } = parseDockerfile(fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  if (stages.length !== 2) throw new CheckFailure(`expected a build and a runtime stage, found ${stages.length} stages`);
  const [build, runtime] = stages;
  const logDir = path.join(workDir, 'logs');
  fs.mkdirSync(logDir);

  console.log('image check: ./Dockerfile replayed on this host, without Docker (docs/operations.md, "Checking the image without Docker")');
  console.log(`  build stage   FROM ${build.image}: NOT pulled; this host's tools instead (node ${process.version}, npm ${execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim()})`);
  console.log(`  runtime stage FROM ${runtime.image}: NOT pulled and not part of the sizes below`);
  console.log(`  node: the image runs Node ${globalArgs.NODE_MAJOR ?? '(see Dockerfile)'}, this check runs this host's ${process.version}`);

  console.log(`\nbuild stage "${build.name}" (logs in ${logDir})`);
  const buildRoot = path.join(workDir, 'build-root');
  replayBuildStage(build, buildRoot, logDir);

  console.log(`\nruntime stage`);
  const runtimeStarted = Date.now();
  const runtimeRoot = path.join(workDir, 'runtime-root');
  const image = replayRuntimeStage(runtime, { [build.name]: buildRoot }, runtimeRoot);
  const app = path.join(runtimeRoot, image.workdir);
  console.log(`  assembled in ${elapsed(runtimeStarted)}`);
  console.log(`  ${image.workdir}: ${du(app)} in all, node_modules ${du(path.join(app, 'node_modules'))} (the base image comes on top)`);
  console.log(`  largest packages: ${largestPackages(path.join(app, 'node_modules'), 5).join(', ')}`);
  console.log(`  ENTRYPOINT ${JSON.stringify(image.entrypoint)}  CMD ${JSON.stringify(image.cmd)}`);
  console.log(`  USER ${image.user}  WORKDIR ${image.workdir}  ENV ${JSON.stringify(image.env)}  EXPOSE ${image.exposed.join(' ')}`);

  const results = new Results();
  console.log('\nfile system');
  const { entries, ownership, addons } = scanTree(app);
  results.record(
    `${image.workdir} ownership`,
    ownership.length === 0,
    ownership.length === 0
      ? `${entries} entries, all uid 0 / gid 0, none group- or other-writable`
      : `${ownership.length} of ${entries} entries wrong: ${ownership.slice(0, 5).join(', ')}`,
  );
  results.record('native addons', addons.length === 0, addons.length === 0 ? 'none (no *.node files)' : addons.join(', '));
  const runner = new ImageRunner(runtimeRoot, image, logDir);
  process.on('exit', () => runner.killAll());
  const probe = await runner.run(['-e', "try { require('fs').writeFileSync('write-probe', ''); console.log('written') } catch (e) { console.log(e.code) } process.exit(0)"]);
  const refused = /^(EROFS|EACCES)$/.test(probe.stdout.trim());
  results.record(`write into ${image.workdir} as uid ${image.user}`, refused && probe.code === 0, `${probe.stdout.trim() || `exit ${probe.code}`}`, probe.logFile);

  const services = fs.readdirSync(path.join(app, 'services')).filter((name) => fs.existsSync(path.join(app, 'services', name, 'dist/main.js')));
  const expected = fs.readdirSync(path.join(REPO_ROOT, 'services')).filter((name) => fs.existsSync(path.join(REPO_ROOT, 'services', name, 'src/main.ts')));
  const missing = expected.filter((name) => !services.includes(name));
  results.record('services in the tree', missing.length === 0, missing.length === 0 ? services.join(', ') : `missing: ${missing.join(', ')}`);
  const defaultProgram = image.cmd[0] ?? '';
  results.record('CMD program', fs.existsSync(path.join(app, defaultProgram)), defaultProgram);

  console.log(`\nprograms (ENTRYPOINT + args, cwd ${image.workdir}, uid/gid ${image.user}, no capabilities, read-only root, /tmp tmpfs)`);
  await checkUsage(runner, results);
  await checkWithDatabase(app, runner, results, healthChecker(app), services, workDir);

  const failed = results.failed;
  console.log(`\nimage check: ${results.rows.length - failed.length} passed, ${failed.length} failed (${elapsed(started)})`);
  if (failed.length > 0) throw new CheckFailure(`failed: ${failed.map((row) => row.program).join('; ')}`);
}

const options = parseOptions(process.argv.slice(2));
const workDir = process.env[WORK_DIR_ENV];
const main = workDir ? runInsideNamespace(workDir) : Promise.resolve().then(() => runOutsideNamespace(options));
main.then(
  () => process.exit(0),
  (err) => {
    console.error(`\nimage check FAILED: ${err instanceof CheckFailure ? err.message : err.stack}`);
    process.exit(1);
  },
);
