/**
 * Renders deploy/k8s (the base and every overlay) with `kubectl kustomize`,
 * validates every object offline against the Kubernetes schemas
 * (kubernetes-models, plus an unknown-field check), and asserts the
 * deployment policy: probes, security context, resources, shutdown budget,
 * network policies, the migration Job, the CronJob fields, secrets, tracing
 * settings, and that every program a container runs exists in the build output.
 *
 * Needs kubectl (KUBECTL overrides the binary) and, for the program and
 * config checks, `npm run build` first (CI builds before it tests).
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import {
  counts,
  findKubectl,
  isEmptySelector,
  K8S_DIR,
  key,
  podTemplates,
  REPO_ROOT,
  render,
  RENDERINGS,
  selects,
  type K8sObject,
  type PodTemplate,
  type RenderingName,
} from './render';
import { schemaProblems, unknownFields } from './schema';

const NAMESPACE = 'mcp-telemetry';
/** Each service and its default port (GRPC_PORT). */
const SERVICES: Record<string, number> = { 'connection-log': 50051, 'status-sync': 50052, audit: 50053, retention: 50054 };
/** The health name every service reports SERVING while its process runs (LIVENESS_HEALTH_NAME in @mcp/runtime). */
const LIVENESS_HEALTH_NAME = 'liveness';
const INGEST = ['connection-log', 'status-sync', 'audit'];
/** Secrets the base references and operators create (docs/operations.md): name -> keys. */
const EXTERNAL_SECRETS: Record<string, string[]> = {
  'mcp-database': ['url'],
  'mcp-retention-api-key': ['api-key'],
  'mcp-audit-checkpoint-key': ['key'],
};
const OTLP_ENDPOINT: Record<RenderingName, string> = {
  base: 'http://jaeger-collector.observability:4318',
  'overlays/prod': 'http://jaeger-collector.observability:4318',
  'overlays/dev': 'http://jaeger:4318',
};
/** The platform's own image (any registry, tag or digest). */
const PLATFORM_IMAGE = /(^|\/)mcp-telemetry([:@]|$)/;
const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
const requireFromHere = createRequire(__filename);
/** The part of @mcp/runtime's config module used here (loaded from its build output at run time). */
interface RuntimeConfigModule {
  loadConfig(options: { path: string; env: NodeJS.ProcessEnv }): {
    grpc: { shutdown_grace_ms: number };
    security: { global_policy: { require_authentication: boolean; require_tls: boolean } };
  };
}

// Rendering happens at collection time, so a missing kubectl fails the file with findKubectl's message.
const kubectl = findKubectl();
const rendered = Object.fromEntries(RENDERINGS.map((name) => [name, render(kubectl.bin, name)])) as Record<
  RenderingName,
  K8sObject[]
>;

// ---------------------------------------------------------------- helpers

const ofKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const named = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);

function containersOf(t: PodTemplate): any[] {
  return [...(t.spec.initContainers ?? []), ...(t.spec.containers ?? [])];
}

const isPlatform = (c: any) => PLATFORM_IMAGE.test(c.image ?? '');
const isServer = (t: PodTemplate) => t.owner.kind === 'Deployment' && t.labels['app.kubernetes.io/component'] === 'server';
const where = (t: PodTemplate, c?: any) => `${key(t.owner)}${c ? ` container ${c.name}` : ''}`;

/** A generated object's name is `<name>-<hash>`; references are rewritten to it. */
const generatedAs = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && (o.metadata.name === name || o.metadata.name.replace(/-[a-z0-9]{10}$/, '') === name));

/** An env var's value: literal, or looked up in a rendered ConfigMap; secret refs as `secret:<name>/<key>`. */
function envValue(objects: K8sObject[], c: any, name: string): string | undefined {
  const entry = (c.env ?? []).find((e: any) => e.name === name);
  if (!entry) return undefined;
  if (entry.value !== undefined) return String(entry.value);
  const cm = entry.valueFrom?.configMapKeyRef;
  if (cm) return named(objects, 'ConfigMap', cm.name)?.data?.[cm.key];
  const secret = entry.valueFrom?.secretKeyRef;
  if (secret) return `secret:${secret.name}/${secret.key}`;
  return undefined;
}

function effectiveSecurity(t: PodTemplate, c: any) {
  const pod = t.spec.securityContext ?? {};
  const own = c.securityContext ?? {};
  return {
    runAsNonRoot: own.runAsNonRoot ?? pod.runAsNonRoot,
    runAsUser: own.runAsUser ?? pod.runAsUser,
    seccomp: (own.seccompProfile ?? pod.seccompProfile)?.type,
    readOnlyRootFilesystem: own.readOnlyRootFilesystem,
    allowPrivilegeEscalation: own.allowPrivilegeEscalation,
    drop: own.capabilities?.drop ?? [],
    add: own.capabilities?.add ?? [],
    privileged: own.privileged,
  };
}

/** The program a platform container runs: the first `.js` path in command + args (the image's ENTRYPOINT is node). */
function programOf(c: any): string[] {
  return [...(c.command ?? []), ...(c.args ?? [])].filter((a: string) => /^[\w@.-]+(\/[\w@.-]+)+\.js$/.test(a));
}

function policiesSelecting(objects: K8sObject[], labels: Record<string, string>, type: 'Ingress' | 'Egress') {
  return ofKind(objects, 'NetworkPolicy').filter(
    (p) =>
      !isEmptySelector(p.spec.podSelector) &&
      selects(p.spec.podSelector, labels) &&
      (p.spec.policyTypes ?? ['Ingress']).includes(type),
  );
}

const egressPorts = (policies: K8sObject[]) =>
  policies.flatMap((p) => (p.spec.egress ?? []).flatMap((r: any) => (r.ports ?? []).map((x: any) => `${x.port}/${x.protocol ?? 'TCP'}`)));

// ---------------------------------------------------------------- every rendering

describe.each(RENDERINGS)('deploy/k8s/%s', (name) => {
  const objects = rendered[name];
  const templates = podTemplates(objects);

  it('renders', () => {
    console.info(`${name} (${kubectl.version}): ${objects.length} objects ${JSON.stringify(counts(objects))}`);
    expect(ofKind(objects, 'Deployment').length).toBeGreaterThanOrEqual(4);
  });

  it('every object validates against the Kubernetes schemas, with no unknown fields', () => {
    const problems = objects.flatMap((o) => schemaProblems(o).map((p) => `${key(o)}: ${p}`));
    expect(problems).toEqual([]);
  });

  it(`everything lives in namespace ${NAMESPACE}, which enforces the restricted Pod Security Standard`, () => {
    const ns = ofKind(objects, 'Namespace');
    expect(ns.map((n) => n.metadata.name)).toEqual([NAMESPACE]);
    expect(ns[0]!.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    const elsewhere = objects.filter((o) => o.kind !== 'Namespace' && o.metadata.namespace !== NAMESPACE).map(key);
    expect(elsewhere).toEqual([]);
    const names = objects.map(key);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });

  it('every container has cpu and memory requests and limits', () => {
    const missing = templates.flatMap((t) =>
      containersOf(t).flatMap((c) =>
        ['requests', 'limits'].flatMap((kind) =>
          ['cpu', 'memory'].filter((r) => c.resources?.[kind]?.[r] === undefined).map((r) => `${where(t, c)}: ${kind}.${r}`),
        ),
      ),
    );
    expect(missing).toEqual([]);
  });

  it('every container runs as uid 10001, non-root, read-only root, no privilege escalation, capabilities dropped, RuntimeDefault seccomp', () => {
    const problems: string[] = [];
    for (const t of templates) {
      for (const c of containersOf(t)) {
        const s = effectiveSecurity(t, c);
        const expectations: Array<[string, unknown, unknown]> = [
          ['runAsNonRoot', s.runAsNonRoot, true],
          ['runAsUser', s.runAsUser, 10001],
          ['readOnlyRootFilesystem', s.readOnlyRootFilesystem, true],
          ['allowPrivilegeEscalation', s.allowPrivilegeEscalation, false],
          ['seccompProfile', s.seccomp, 'RuntimeDefault'],
          ['capabilities.drop has ALL', s.drop.includes('ALL'), true],
          ['capabilities.add empty', s.add.length, 0],
          ['not privileged', s.privileged ?? false, false],
        ];
        for (const [what, actual, wanted] of expectations) {
          if (actual !== wanted) problems.push(`${where(t, c)}: ${what} is ${JSON.stringify(actual)}, want ${JSON.stringify(wanted)}`);
        }
      }
      if (t.spec.automountServiceAccountToken !== false) problems.push(`${where(t)}: automountServiceAccountToken not false`);
      if (t.spec.hostNetwork || t.spec.hostPID || t.spec.hostIPC) problems.push(`${where(t)}: uses host namespaces`);
    }
    expect(problems).toEqual([]);
  });

  it('every platform container has a writable emptyDir at /tmp (the root filesystem is read-only)', () => {
    const problems = templates.flatMap((t) =>
      containersOf(t)
        .filter(isPlatform)
        .filter((c) => {
          const mount = (c.volumeMounts ?? []).find((m: any) => m.mountPath === '/tmp');
          const volume = mount && (t.spec.volumes ?? []).find((v: any) => v.name === mount.name);
          return !volume?.emptyDir || mount.readOnly;
        })
        .map((c) => where(t, c)),
    );
    expect(problems).toEqual([]);
  });

  it('Deployments have liveness and readiness probes; the services probe grpc.health.v1 natively on their port, with a startupProbe and a preStop sleep', () => {
    const problems: string[] = [];
    for (const t of templates.filter((x) => x.owner.kind === 'Deployment')) {
      for (const c of t.spec.containers) {
        if (!c.livenessProbe) problems.push(`${where(t, c)}: no livenessProbe`);
        if (!c.readinessProbe) problems.push(`${where(t, c)}: no readinessProbe`);
        if (!isServer(t)) continue;
        const port = SERVICES[t.owner.metadata.name];
        if (port === undefined) {
          problems.push(`${where(t)}: not a known service (${Object.keys(SERVICES).join(', ')})`);
          continue;
        }
        for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
          const grpc = c[probe]?.grpc;
          // Readiness follows the database; startup and liveness must not, or a database outage restarts every pod.
          const wanted = probe === 'readinessProbe' ? (s: string | undefined) => s === undefined || s === '' || s.startsWith('mcp.') : (s: string | undefined) => s === LIVENESS_HEALTH_NAME;
          if (!grpc) problems.push(`${where(t, c)}: ${probe} is not a native grpc probe`);
          else if (grpc.port !== port) problems.push(`${where(t, c)}: ${probe} port ${grpc.port}, want ${port}`);
          else if (!wanted(grpc.service)) problems.push(`${where(t, c)}: ${probe} asks health for ${JSON.stringify(grpc.service)}`);
        }
        const containerPort = (c.ports ?? []).find((p: any) => p.name === 'grpc')?.containerPort;
        if (containerPort !== port) problems.push(`${where(t, c)}: containerPort "grpc" is ${containerPort}, want ${port}`);
        if (envValue(objects, c, 'GRPC_PORT') !== String(port)) problems.push(`${where(t, c)}: GRPC_PORT is not ${port}`);
        const preStop = c.lifecycle?.preStop;
        if (!(preStop?.sleep?.seconds > 0) && !preStop?.exec) problems.push(`${where(t, c)}: no preStop delay`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('terminationGracePeriodSeconds exceeds SHUTDOWN_GRACE_MS, and covers preStop + drain + telemetry flush', () => {
    const problems: string[] = [];
    for (const t of templates) {
      const grace = t.spec.terminationGracePeriodSeconds ?? 30;
      for (const c of t.spec.containers.filter(isPlatform)) {
        const drainMs = Number(envValue(objects, c, 'SHUTDOWN_GRACE_MS') ?? DEFAULT_SHUTDOWN_GRACE_MS);
        if (!(grace > drainMs / 1000)) problems.push(`${where(t, c)}: grace ${grace}s <= SHUTDOWN_GRACE_MS ${drainMs}ms`);
        const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
        const flushMs = Number(envValue(objects, c, 'OTEL_EXPORTER_OTLP_TIMEOUT') ?? 10_000);
        const budget = preStop + drainMs / 1000 + flushMs / 1000;
        if (!(grace > budget)) problems.push(`${where(t, c)}: grace ${grace}s <= preStop ${preStop}s + drain + flush = ${budget}s`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('each service has a Deployment and a ClusterIP Service (port "grpc", appProtocol grpc) on its default port', () => {
    for (const [svc, port] of Object.entries(SERVICES)) {
      const deployment = named(objects, 'Deployment', svc);
      const service = named(objects, 'Service', svc);
      expect(deployment, `Deployment/${svc}`).toBeDefined();
      expect(service, `Service/${svc}`).toBeDefined();
      expect(service!.spec.type ?? 'ClusterIP').toBe('ClusterIP');
      expect(service!.spec.ports).toEqual([expect.objectContaining({ name: 'grpc', port, appProtocol: 'grpc' })]);
      expect([port, 'grpc']).toContain(service!.spec.ports[0].targetPort);
      expect(selects({ matchLabels: service!.spec.selector }, deployment!.spec.template.metadata.labels)).toBe(true);
      expect(selects(deployment!.spec.selector, deployment!.spec.template.metadata.labels)).toBe(true);
      expect(programOf(deployment!.spec.template.spec.containers[0])).toEqual([`services/${svc}/dist/main.js`]);
    }
  });

  it('the ingest services have a PodDisruptionBudget and a HorizontalPodAutoscaler, which owns their replica count', () => {
    for (const svc of INGEST) {
      const deployment = named(objects, 'Deployment', svc)!;
      const labels = deployment.spec.template.metadata.labels;
      const pdb = ofKind(objects, 'PodDisruptionBudget').filter((p) => selects(p.spec.selector, labels));
      expect(pdb.map(key), `PDB for ${svc}`).toHaveLength(1);
      expect(pdb[0]!.spec.maxUnavailable ?? pdb[0]!.spec.minAvailable).toBeDefined();
      const hpa = ofKind(objects, 'HorizontalPodAutoscaler').filter(
        (h) => h.spec.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === svc,
      );
      expect(hpa.map(key), `HPA for ${svc}`).toHaveLength(1);
      expect(hpa[0]!.spec.minReplicas).toBeGreaterThanOrEqual(1);
      expect(hpa[0]!.spec.maxReplicas).toBeGreaterThanOrEqual(hpa[0]!.spec.minReplicas);
      expect(deployment.spec.replicas, `${svc}: replicas belongs to the HPA`).toBeUndefined();
    }
  });

  it('NetworkPolicies: default deny, and every workload selected by its own policy', () => {
    const deny = ofKind(objects, 'NetworkPolicy').filter((p) => isEmptySelector(p.spec.podSelector));
    expect(deny.map(key)).toEqual(['NetworkPolicy/default-deny']);
    expect(deny[0]!.spec.policyTypes).toEqual(expect.arrayContaining(['Ingress', 'Egress']));
    expect(deny[0]!.spec.ingress ?? []).toEqual([]);
    expect(deny[0]!.spec.egress ?? []).toEqual([]);
    const unselected = templates
      .filter((t) => policiesSelecting(objects, t.labels, 'Ingress').length === 0 || policiesSelecting(objects, t.labels, 'Egress').length === 0)
      .map((t) => where(t));
    expect(unselected).toEqual([]);
  });

  it('NetworkPolicies: services admit labelled clients on their gRPC port (retention also its CronJob) and reach PostgreSQL, DNS and OTLP', () => {
    const cron = templates.filter((t) => t.owner.kind === 'CronJob' && t.labels['app.kubernetes.io/name'] === 'retention-cron');
    expect(cron).toHaveLength(1);
    for (const [svc, port] of Object.entries(SERVICES)) {
      const labels = named(objects, 'Deployment', svc)!.spec.template.metadata.labels;
      const rules = policiesSelecting(objects, labels, 'Ingress').flatMap((p) => p.spec.ingress ?? []);
      const onPort = rules.filter((r: any) => (r.ports ?? []).some((p: any) => p.port === port || p.port === 'grpc'));
      const admits = (podLabels: Record<string, string>) =>
        onPort.some((r: any) => (r.from ?? []).some((f: any) => !f.namespaceSelector && !f.ipBlock && selects(f.podSelector, podLabels)));
      expect(admits({ 'mcp-telemetry.io/grpc-client': 'true' }), `${svc} admits client pods`).toBe(true);
      expect(admits({ 'app.kubernetes.io/name': 'unlabelled' }), `${svc} admits any pod`).toBe(false);
      if (svc === 'retention') expect(admits(cron[0]!.labels), 'retention admits its CronJob').toBe(true);
      const egress = egressPorts(policiesSelecting(objects, labels, 'Egress'));
      expect(egress, svc).toEqual(expect.arrayContaining(['5432/TCP', '53/UDP', '53/TCP', '4318/TCP']));
    }
    const cronEgress = egressPorts(policiesSelecting(objects, cron[0]!.labels, 'Egress'));
    expect(cronEgress).toEqual(expect.arrayContaining(['50054/TCP', '53/UDP', '4318/TCP']));
    expect(cronEgress).not.toContain('5432/TCP');
  });

  it('exactly one migration Job (mcp-migrate: packages/db/dist/cli.js up), and no initContainers anywhere', () => {
    const migrating = templates.filter((t) =>
      containersOf(t).some((c) => programOf(c).includes('packages/db/dist/cli.js') && ['up', 'down'].includes(c.args?.at(-1))),
    );
    expect(migrating.map((t) => where(t))).toEqual(['Job/mcp-migrate']);
    const job = named(objects, 'Job', 'mcp-migrate')!;
    expect(job.spec.template.spec.containers[0].args).toEqual(['packages/db/dist/cli.js', 'up']);
    expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(1);
    expect(job.spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(job.spec.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(['Never', 'OnFailure']).toContain(job.spec.template.spec.restartPolicy);
    expect(envValue(objects, job.spec.template.spec.containers[0], 'DATABASE_URL')).toMatch(/^secret:mcp-database(-[a-z0-9]{10})?\/url$/);
    expect(templates.filter((t) => (t.spec.initContainers ?? []).length > 0).map((t) => where(t))).toEqual([]);
    // The Deployments and CronJob roll out only after it (docs/operations.md): they carry the label that phase 2 applies.
    const afterMigration = objects.filter((o) => o.metadata.labels?.['mcp-telemetry.io/rollout'] === 'after-migration').map(key);
    const platformWorkloads = templates
      .filter((t) => t.owner.kind !== 'Job' && containersOf(t).some(isPlatform))
      .map((t) => key(t.owner));
    expect(afterMigration.sort()).toEqual(platformWorkloads.sort());
  });

  it('CronJobs: concurrencyPolicy Forbid, startingDeadlineSeconds, backoffLimit, activeDeadlineSeconds, history limits, ttlSecondsAfterFinished', () => {
    const cronJobs = ofKind(objects, 'CronJob');
    expect(cronJobs.length).toBeGreaterThanOrEqual(1);
    for (const cj of cronJobs) {
      const s = cj.spec;
      expect(s.concurrencyPolicy, key(cj)).toBe('Forbid');
      expect(s.startingDeadlineSeconds, key(cj)).toBeGreaterThan(0);
      expect(s.successfulJobsHistoryLimit, key(cj)).toBeGreaterThanOrEqual(1);
      expect(s.failedJobsHistoryLimit, key(cj)).toBeGreaterThanOrEqual(1);
      expect(s.jobTemplate.spec.backoffLimit, key(cj)).toBeGreaterThanOrEqual(0);
      expect(s.jobTemplate.spec.activeDeadlineSeconds, key(cj)).toBeGreaterThan(0);
      expect(s.jobTemplate.spec.ttlSecondsAfterFinished, key(cj)).toBeGreaterThan(0);
      expect(['Never', 'OnFailure']).toContain(s.jobTemplate.spec.template.spec.restartPolicy);
    }
  });

  it('the retention CronJob runs `cron.js run --policy all` against the retention Service, with its API key from a Secret', () => {
    const cj = ofKind(objects, 'CronJob').find((o) => o.metadata.labels?.['app.kubernetes.io/name'] === 'retention-cron')!;
    const c = cj.spec.jobTemplate.spec.template.spec.containers[0];
    expect(c.args).toEqual(['services/retention/dist/cron.js', 'run', '--policy', 'all']);
    expect(c.command).toBeUndefined(); // keeps the image's ENTRYPOINT: node --require telemetry-preload
    expect(envValue(objects, c, 'RETENTION_ADDRESS')).toBe(`retention.${NAMESPACE}.svc:${SERVICES.retention}`);
    expect(envValue(objects, c, 'MCP_API_KEY')).toMatch(/^secret:mcp-retention-api-key(-[a-z0-9]{10})?\/api-key$/);
    expect(envValue(objects, c, 'DATABASE_URL'), 'the client goes through the service, not to the database').toBeUndefined();
  });

  it('the weekly database maintenance CronJob runs `mcp-db maintain` with the database URL', () => {
    const cj = ofKind(objects, 'CronJob').find((o) => o.metadata.labels?.['app.kubernetes.io/name'] === 'db-maintenance')!;
    expect(cj, 'CronJob db-maintenance').toBeDefined();
    const c = cj.spec.jobTemplate.spec.template.spec.containers[0];
    expect(c.args).toEqual(['packages/db/dist/cli.js', 'maintain']);
    expect(envValue(objects, c, 'DATABASE_URL')).toMatch(/^secret:mcp-database(-[a-z0-9]{10})?\/url$/);
    // A failed REINDEX CONCURRENTLY leaves an invalid index; a retry would add another.
    expect(cj.spec.jobTemplate.spec.backoffLimit).toBe(0);
  });

  it('every platform container names itself to OpenTelemetry and exports to the Jaeger collector', () => {
    const names: string[] = [];
    for (const t of templates) {
      for (const c of containersOf(t).filter(isPlatform)) {
        const serviceName = envValue(objects, c, 'OTEL_SERVICE_NAME');
        expect(serviceName, `${where(t, c)} OTEL_SERVICE_NAME`).toMatch(/^[a-z][a-z0-9-]+$/);
        names.push(serviceName!);
        expect(envValue(objects, c, 'OTEL_EXPORTER_OTLP_ENDPOINT'), `${where(t, c)} OTEL_EXPORTER_OTLP_ENDPOINT`).toBe(OTLP_ENDPOINT[name]);
        if (isServer(t)) {
          expect(serviceName).toBe(t.owner.metadata.name);
          // Metrics: Jaeger takes no metrics, so they go to a collector (or nowhere in dev).
          const metricsExporter = envValue(objects, c, 'OTEL_METRICS_EXPORTER');
          expect(metricsExporter, `${where(t, c)} OTEL_METRICS_EXPORTER`).toBe(name === 'overlays/dev' ? 'none' : 'otlp');
          if (metricsExporter === 'otlp') {
            expect(envValue(objects, c, 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT')).toMatch(/^http:\/\/[\w.-]+:4318\/v1\/metrics$/);
          }
        }
      }
    }
    expect(names.filter((n, i) => names.indexOf(n) !== i), 'OTEL_SERVICE_NAME reused').toEqual([]);
  });

  it('every ConfigMap, Secret and PersistentVolumeClaim a pod references exists (Secrets outside dev: the documented external ones)', () => {
    const problems: string[] = [];
    const secretRef = (t: PodTemplate, secret: string, k: string | undefined) => {
      const generated = named(objects, 'Secret', secret);
      if (generated) {
        if (k && !(k in (generated.data ?? {}) || k in (generated.stringData ?? {}))) problems.push(`${where(t)}: Secret/${secret} has no key ${k}`);
      } else if (!EXTERNAL_SECRETS[secret] || (k && !EXTERNAL_SECRETS[secret]!.includes(k))) {
        problems.push(`${where(t)}: Secret ${secret}${k ? `/${k}` : ''} is neither rendered nor a documented external Secret`);
      } else if (name === 'overlays/dev') {
        problems.push(`${where(t)}: dev must generate Secret ${secret}`);
      }
    };
    for (const t of templates) {
      for (const c of containersOf(t)) {
        for (const e of c.env ?? []) {
          const cm = e.valueFrom?.configMapKeyRef;
          if (cm && named(objects, 'ConfigMap', cm.name)?.data?.[cm.key] === undefined) problems.push(`${where(t, c)}: ConfigMap ${cm.name}/${cm.key}`);
          if (e.valueFrom?.secretKeyRef) secretRef(t, e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
        }
        for (const from of c.envFrom ?? []) {
          if (from.configMapRef && !named(objects, 'ConfigMap', from.configMapRef.name)) problems.push(`${where(t, c)}: ConfigMap ${from.configMapRef.name}`);
          if (from.secretRef) secretRef(t, from.secretRef.name, undefined);
        }
        for (const m of c.volumeMounts ?? []) {
          if (!(t.spec.volumes ?? []).some((v: any) => v.name === m.name)) problems.push(`${where(t, c)}: mount of missing volume ${m.name}`);
        }
      }
      for (const v of t.spec.volumes ?? []) {
        if (v.configMap && !named(objects, 'ConfigMap', v.configMap.name)) problems.push(`${where(t)}: ConfigMap ${v.configMap.name}`);
        if (v.secret) secretRef(t, v.secret.secretName, undefined);
        if (v.persistentVolumeClaim && !named(objects, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName)) {
          problems.push(`${where(t)}: PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it(name === 'overlays/dev' ? 'Secrets are generated with obviously fake values' : 'no Secret values are committed', () => {
    const secrets = ofKind(objects, 'Secret');
    if (name !== 'overlays/dev') {
      expect(secrets.filter((s) => Object.keys(s.data ?? {}).length + Object.keys(s.stringData ?? {}).length > 0).map(key)).toEqual([]);
      return;
    }
    expect(secrets.map((s) => s.metadata.name.replace(/-[a-z0-9]{10}$/, '')).sort()).toEqual(Object.keys(EXTERNAL_SECRETS).sort());
    for (const s of secrets) {
      for (const [k, v] of Object.entries<string>(s.data ?? {})) {
        expect(Buffer.from(v, 'base64').toString('utf8'), `${key(s)}/${k}`).toContain('DEV-ONLY-NOT-A-SECRET');
      }
    }
  });

  it('the platform configuration in the ConfigMap loads with @mcp/runtime, and its drain time matches SHUTDOWN_GRACE_MS', () => {
    const configFile = path.join(REPO_ROOT, 'packages/runtime/dist/config.js');
    expect(fs.existsSync(configFile), `${configFile} missing: run \`npm run build\` first`).toBe(true);
    const { loadConfig } = requireFromHere(configFile) as RuntimeConfigModule;
    const cm = generatedAs(objects, 'ConfigMap', 'mcp-config');
    expect(cm?.data?.['mcp.json'], 'ConfigMap mcp-config with mcp.json').toBeDefined();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-deploy-'));
    try {
      const file = path.join(dir, 'mcp.json');
      fs.writeFileSync(file, cm!.data['mcp.json']);
      const config = loadConfig({ path: file, env: {} });
      for (const t of templates.filter(isServer)) {
        const c = t.spec.containers[0];
        expect(envValue(objects, c, 'MCP_CONFIG')).toBe('/etc/mcp/mcp.json');
        const mount = c.volumeMounts.find((m: any) => m.mountPath === '/etc/mcp');
        const volume = t.spec.volumes.find((v: any) => v.name === mount?.name);
        expect(volume?.configMap?.name, where(t, c)).toBe(cm!.metadata.name);
        expect(Number(envValue(objects, c, 'SHUTDOWN_GRACE_MS'))).toBe(config.grpc.shutdown_grace_ms);
      }
      expect(config.security.global_policy.require_authentication).toBe(true);
      if (name === 'overlays/prod') expect(config.security.global_policy.require_tls).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- programs exist in the build output

describe('programs the manifests and the image run exist after `npm run build`', () => {
  const programs = new Map<string, string[]>();
  for (const name of RENDERINGS) {
    for (const t of podTemplates(rendered[name])) {
      for (const c of containersOf(t).filter(isPlatform)) {
        const found = programOf(c);
        if (found.length === 0) programs.set(`(none) ${name} ${where(t, c)}`, []);
        for (const p of found) programs.set(p, [...(programs.get(p) ?? []), `${name} ${where(t, c)}`]);
      }
    }
  }
  const dockerfile = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const instruction = (name: string): string[] => {
    const lines = dockerfile.split('\n').filter((l) => l.startsWith(`${name} `));
    const last = lines[lines.length - 1];
    if (!last) throw new Error(`Dockerfile has no ${name}`);
    return JSON.parse(last.slice(name.length + 1)) as string[];
  };
  const entrypoint = instruction('ENTRYPOINT');
  const cmd = instruction('CMD');
  programs.set(cmd[0]!, [...(programs.get(cmd[0]!) ?? []), 'Dockerfile CMD']);

  it.each([...programs.keys()].sort())('%s', (program) => {
    expect(program.startsWith('(none)'), `a platform container with no program: ${program}`).toBe(false);
    const file = path.join(REPO_ROOT, program);
    expect(fs.existsSync(file), `${program} (used by ${programs.get(program)!.join(', ')}) is not in the build output: run \`npm run build\`, or fix the path`).toBe(true);
  });

  it('the ENTRYPOINT preloads telemetry from a module that resolves in the image layout', () => {
    expect(entrypoint[0]).toMatch(/\/node$/);
    const i = entrypoint.indexOf('--require');
    expect(i, 'ENTRYPOINT has --require').toBeGreaterThan(0);
    const spec = entrypoint[i + 1]!;
    expect(spec).toBe('@mcp/runtime/dist/telemetry-preload.js');
    // In the image /app/node_modules/@mcp/runtime links to /app/packages/runtime, as here.
    expect(fs.realpathSync(path.join(REPO_ROOT, 'node_modules', spec))).toBe(path.join(REPO_ROOT, 'packages/runtime/dist/telemetry-preload.js'));
  });

  it('the Dockerfile builds in one stage and runs non-root as uid 10001 in a shell-less runtime stage', () => {
    const stages = dockerfile.split('\n').filter((l) => /^FROM /.test(l));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[stages.length - 1]).toMatch(/distroless\/nodejs\$\{NODE_MAJOR\}-debian12|distroless\/nodejs\d+/);
    // A clean install from the lockfile that fails if the install would change it.
    expect(dockerfile).toMatch(/npm install --no-audit --no-fund \\\n && cmp package-lock.json \/tmp\/lock.json/);
    expect(dockerfile).toMatch(/^RUN npm run build$/m);
    expect(dockerfile).toMatch(/^RUN npm prune --omit=dev$/m);
    expect(dockerfile).toMatch(/^USER 10001:10001$/m);
    expect(dockerfile).toMatch(/COPY --from=build .*\/out \/app/);
  });
});

// ---------------------------------------------------------------- overlay specifics

describe('overlay specifics', () => {
  it('base: mcp.json is identical to config/mcp.json (kustomize cannot read files outside the kustomization)', () => {
    const copy = fs.readFileSync(path.join(K8S_DIR, 'base/mcp.json'), 'utf8');
    const source = fs.readFileSync(path.join(REPO_ROOT, 'config/mcp.json'), 'utf8');
    expect(copy, 'run: cp config/mcp.json deploy/k8s/base/mcp.json').toBe(source);
  });

  it('dev: one replica of everything, and a Jaeger all-in-one collecting OTLP in the namespace', () => {
    const objects = rendered['overlays/dev'];
    for (const d of ofKind(objects, 'Deployment')) {
      const hpa = ofKind(objects, 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === d.metadata.name);
      expect(hpa ? hpa.spec.minReplicas : d.spec.replicas ?? 1, key(d)).toBe(1);
    }
    const jaeger = named(objects, 'Deployment', 'jaeger')!;
    const c = jaeger.spec.template.spec.containers[0];
    expect(c.image).toMatch(/^jaegertracing\/all-in-one:\d+\.\d+\.\d+$/);
    expect(envValue(objects, c, 'COLLECTOR_OTLP_ENABLED')).toBe('true');
    const svc = named(objects, 'Service', 'jaeger')!;
    expect(svc.spec.ports.map((p: any) => p.port)).toEqual(expect.arrayContaining([4317, 4318, 16686]));
    const labels = jaeger.spec.template.metadata.labels;
    const ingress = policiesSelecting(objects, labels, 'Ingress').flatMap((p) => p.spec.ingress ?? []);
    expect(ingress.flatMap((r: any) => r.ports.map((p: any) => p.port))).toContain(4318);
    // The platform's pods may reach it.
    const cl = named(objects, 'Deployment', 'connection-log')!.spec.template.metadata.labels;
    const toJaeger = policiesSelecting(objects, cl, 'Egress')
      .flatMap((p) => p.spec.egress ?? [])
      .filter((r: any) => (r.to ?? []).some((to: any) => !to.namespaceSelector && selects(to.podSelector, labels)));
    expect(toJaeger.flatMap((r: any) => r.ports.map((p: any) => p.port))).toContain(4318);
  });

  it('prod: audit checkpoints on a ReadWriteMany PVC, more replicas and resources than dev, require_tls', () => {
    const prod = rendered['overlays/prod'];
    const dev = rendered['overlays/dev'];
    const audit = named(prod, 'Deployment', 'audit')!.spec.template.spec;
    const dir = envValue(prod, audit.containers[0], 'AUDIT_CHECKPOINT_DIR');
    const mount = audit.containers[0].volumeMounts.find((m: any) => m.mountPath === dir);
    const volume = audit.volumes.find((v: any) => v.name === mount?.name);
    expect(volume).toEqual({ name: 'audit-checkpoints', persistentVolumeClaim: { claimName: 'audit-checkpoints' } });
    expect(named(prod, 'PersistentVolumeClaim', 'audit-checkpoints')!.spec.accessModes).toEqual(['ReadWriteMany']);
    expect(envValue(prod, audit.containers[0], 'AUDIT_CHECKPOINT_KEY')).toBe('secret:mcp-audit-checkpoint-key/key');
    const devAudit = named(dev, 'Deployment', 'audit')!.spec.template.spec;
    expect(devAudit.volumes.find((v: any) => v.name === 'audit-checkpoints')?.emptyDir).toBeDefined();
    for (const svc of INGEST) {
      const hpa = (objects: K8sObject[]) => named(objects, 'HorizontalPodAutoscaler', svc)!.spec;
      expect(hpa(prod).minReplicas, svc).toBeGreaterThanOrEqual(2);
      expect(hpa(prod).maxReplicas, svc).toBeGreaterThan(hpa(dev).maxReplicas);
    }
    expect(named(prod, 'Deployment', 'retention')!.spec.replicas).toBeGreaterThanOrEqual(2);
    const memory = (objects: K8sObject[], svc: string) =>
      named(objects, 'Deployment', svc)!.spec.template.spec.containers[0].resources.limits.memory as string;
    expect(memory(prod, 'connection-log')).toBe('1Gi');
    expect(memory(dev, 'connection-log')).toBe('384Mi');
    for (const d of ofKind(prod, 'Deployment')) {
      expect(d.spec.template.spec.containers[0].image, key(d)).toMatch(/^[\w.-]+(:\d+)?\/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/);
    }
  });

  it('the kustomizations use only what old kustomize (v2.0.3, Debian kubectl 1.20) supports', () => {
    const allowed = new Set([
      'apiVersion', 'kind', 'namespace', 'bases', 'resources', 'generatorOptions', 'configMapGenerator', 'secretGenerator',
      'images', 'patchesStrategicMerge', 'patchesJson6902', 'commonLabels', 'commonAnnotations', 'namePrefix', 'nameSuffix',
    ]);
    for (const name of RENDERINGS) {
      const dir = path.join(K8S_DIR, name);
      const k = yaml.load(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as Record<string, any>;
      expect(Object.keys(k).filter((f) => !allowed.has(f)), `${name}: fields old kustomize lacks (components, labels, patches, replacements...)`).toEqual([]);
      for (const r of k.resources ?? []) {
        expect(fs.statSync(path.join(dir, r)).isFile(), `${name}: resources entry ${r} must be a file (directories go in bases)`).toBe(true);
      }
      for (const b of k.bases ?? []) expect(fs.statSync(path.join(dir, b)).isDirectory(), `${name}: base ${b}`).toBe(true);
      for (const g of [...(k.configMapGenerator ?? []), ...(k.secretGenerator ?? [])]) {
        expect(Object.keys(g).filter((f) => !['name', 'behavior', 'files', 'literals', 'type'].includes(f)), `${name}: generator ${g.name}`).toEqual([]);
      }
    }
  });

  it('the checks are not vacuous: a typo and a wrong type are both reported', () => {
    const deployment = structuredClone(named(rendered.base, 'Deployment', 'connection-log')!);
    const c = deployment.spec.template.spec.containers[0];
    c.readinessProb = c.readinessProbe;
    c.securityContext.readOnlyRootFileSystem = true;
    expect(unknownFields(deployment)).toEqual([
      'unknown field spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem',
      'unknown field spec.template.spec.containers[0].readinessProb',
    ]);
    c.livenessProbe.grpc.port = 'grpc';
    expect(schemaProblems(deployment).join('\n')).toMatch(/livenessProbe\/grpc\/port must be integer/);
  });
});
