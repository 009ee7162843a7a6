/**
 * Rendering: `kubectl kustomize <dir>` (kubectl's built-in kustomize), parsed
 * into plain objects. KUBECTL overrides the binary (e.g. an older kubectl, to
 * check that the overlays still build with the kustomize CI may fall back to).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as yaml from 'js-yaml';

export const DEPLOY_DIR = path.resolve(__dirname, '..');
export const REPO_ROOT = path.resolve(DEPLOY_DIR, '..');
export const K8S_DIR = path.join(DEPLOY_DIR, 'k8s');

/** Every kustomization the tests render: the base on its own and each overlay. */
export const RENDERINGS = ['base', 'overlays/dev', 'overlays/prod'] as const;
export type RenderingName = (typeof RENDERINGS)[number];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // The rest is checked by the schemas, then read loosely by the policy tests.
  [key: string]: any;
}

const INSTALL_HINT =
  'Install kubectl (any version with `kubectl kustomize`; Debian: apt-get install -y kubernetes-client, which is ' +
  'what .ci/run does where kubectl is missing), or point KUBECTL at one.';

/** The kubectl binary and its version line; throws a readable error when there is none. */
export function findKubectl(): { bin: string; version: string } {
  const bin = process.env.KUBECTL || 'kubectl';
  const probe = spawnSync(bin, ['version', '--client'], { encoding: 'utf8' });
  if (probe.error) {
    const reason = (probe.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : probe.error.message;
    throw new Error(`kubectl is required to render deploy/k8s (${bin}: ${reason}). ${INSTALL_HINT}`);
  }
  if (probe.status !== 0) {
    throw new Error(`\`${bin} version --client\` failed (exit ${probe.status}): ${probe.stderr.trim()}. ${INSTALL_HINT}`);
  }
  return { bin, version: probe.stdout.trim().split('\n')[0] ?? '' };
}

/** `kubectl kustomize deploy/k8s/<name>`, parsed. Deprecation warnings on stderr are ignored. */
export function render(kubectl: string, name: RenderingName): K8sObject[] {
  const dir = path.join(K8S_DIR, name);
  let out: string;
  try {
    out = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl kustomize ${path.relative(REPO_ROOT, dir)} failed: ${e.stderr?.trim() || e.message}`);
  }
  const docs = yaml.loadAll(out).filter((d): d is K8sObject => d !== null && d !== undefined);
  for (const d of docs) {
    if (typeof d !== 'object' || typeof d.apiVersion !== 'string' || typeof d.kind !== 'string' || !d.metadata?.name) {
      throw new Error(`${name}: rendered a document without apiVersion/kind/metadata.name: ${JSON.stringify(d).slice(0, 200)}`);
    }
  }
  return docs;
}

export const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

export function counts(objects: K8sObject[]): Record<string, number> {
  const byKind: Record<string, number> = {};
  for (const o of objects) byKind[o.kind] = (byKind[o.kind] ?? 0) + 1;
  return Object.fromEntries(Object.entries(byKind).sort(([a], [b]) => a.localeCompare(b)));
}

/** A workload's pod template, whatever the kind. */
export interface PodTemplate {
  owner: K8sObject;
  labels: Record<string, string>;
  spec: any;
}

export function podTemplates(objects: K8sObject[]): PodTemplate[] {
  const out: PodTemplate[] = [];
  for (const o of objects) {
    const template =
      o.kind === 'Deployment' || o.kind === 'StatefulSet' || o.kind === 'DaemonSet' || o.kind === 'Job'
        ? o.spec?.template
        : o.kind === 'CronJob'
          ? o.spec?.jobTemplate?.spec?.template
          : o.kind === 'Pod'
            ? { metadata: o.metadata, spec: o.spec }
            : undefined;
    if (template) out.push({ owner: o, labels: template.metadata?.labels ?? {}, spec: template.spec ?? {} });
  }
  return out;
}

/** Does a label selector ({matchLabels, matchExpressions}) select these labels? */
export function selects(selector: any, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries<string>(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !e.values.includes(value)) return false;
        break;
      case 'NotIn':
        if (has && e.values.includes(value)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

export function isEmptySelector(selector: any): boolean {
  return Object.keys(selector?.matchLabels ?? {}).length === 0 && (selector?.matchExpressions ?? []).length === 0;
}
