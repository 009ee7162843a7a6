/**
 * Offline validation against the Kubernetes API schemas, two ways:
 *
 * 1. kubernetes-models: each kind's model, `.validate()` (types, required
 *    fields, enums and formats from the OpenAPI schema of Kubernetes 1.30+).
 * 2. Unknown fields. Those schemas allow additional properties, so a typo
 *    (`startupProb:`, `readOnlyRootFileSystem:`) would pass and the API server
 *    would drop the field with a mere warning. The same package's TypeScript
 *    declarations list every field of every type; the TypeScript checker walks
 *    each object against them and reports any key the API does not know.
 */
import * as path from 'node:path';
import * as ts from 'typescript';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { DEPLOY_DIR, type K8sObject } from './render';

interface ModelClass {
  new (data: any): { validate(): void };
  apiVersion: string;
  kind: string;
}

/** Every kind the manifests may contain: model class and the module declaring its interface. */
const MODELS: Array<{ model: ModelClass; module: string; iface: string }> = [
  { model: Namespace, module: 'kubernetes-models/v1/Namespace', iface: 'INamespace' },
  { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  { model: Secret, module: 'kubernetes-models/v1/Secret', iface: 'ISecret' },
  { model: Service, module: 'kubernetes-models/v1/Service', iface: 'IService' },
  { model: PersistentVolumeClaim, module: 'kubernetes-models/v1/PersistentVolumeClaim', iface: 'IPersistentVolumeClaim' },
  { model: Deployment, module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  { model: Job, module: 'kubernetes-models/batch/v1/Job', iface: 'IJob' },
  { model: CronJob, module: 'kubernetes-models/batch/v1/CronJob', iface: 'ICronJob' },
  { model: PodDisruptionBudget, module: 'kubernetes-models/policy/v1/PodDisruptionBudget', iface: 'IPodDisruptionBudget' },
  {
    model: HorizontalPodAutoscaler,
    module: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
    iface: 'IHorizontalPodAutoscaler',
  },
  { model: NetworkPolicy, module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', iface: 'INetworkPolicy' },
];

const typeKey = (apiVersion: string, kind: string) => `${apiVersion}/${kind}`;
const byType = new Map(MODELS.map((m) => [typeKey(m.model.apiVersion, m.model.kind), m]));

/** Schema problems of one object (empty when valid). */
export function schemaProblems(o: K8sObject): string[] {
  const entry = byType.get(typeKey(o.apiVersion, o.kind));
  if (!entry) return [`no schema registered for ${o.apiVersion} ${o.kind} (add it to MODELS in deploy/test/schema.ts)`];
  try {
    new entry.model(forValidation(o)).validate();
  } catch (err) {
    return [(err as Error).message];
  }
  return unknownFields(o);
}

/**
 * Current kustomize wraps a Secret's base64 values at 76 columns. The API
 * server decodes them with Go's base64, which skips line breaks, but the
 * schema's "byte" format does not: unwrap before validating.
 */
function forValidation(o: K8sObject): K8sObject {
  if (o.kind !== 'Secret' || !o.data) return o;
  const data = Object.fromEntries(Object.entries<string>(o.data).map(([k, v]) => [k, v.replace(/[\r\n]/g, '')]));
  return { ...o, data };
}

// ---------------------------------------------------------------- unknown fields

let checker: { check: ts.TypeChecker; anchor: ts.Node; types: Map<string, ts.Type> } | undefined;

function loadChecker() {
  if (checker) return checker;
  // A virtual module next to deploy/package.json, so `kubernetes-models/...` resolves through node_modules.
  const entry = path.join(DEPLOY_DIR, '__k8s_kinds__.ts');
  const source =
    MODELS.map((m, i) => `import type { ${m.iface} as K${i} } from '${m.module}';`).join('\n') +
    `\nexport interface Kinds {\n${MODELS.map((m, i) => `  '${typeKey(m.model.apiVersion, m.model.kind)}': K${i};`).join('\n')}\n}\n`;
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, lang, ...rest) =>
    path.resolve(file) === entry ? ts.createSourceFile(file, source, lang) : getSourceFile(file, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (file) => path.resolve(file) === entry || fileExists(file);
  const program = ts.createProgram([entry], options, host);
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  if (problems.length > 0) throw new Error(`cannot load the kubernetes-models declarations: ${problems.join('; ')}`);
  const check = program.getTypeChecker();
  const file = program.getSourceFile(entry)!;
  const kinds = file.statements.find(ts.isInterfaceDeclaration)!;
  const kindsType = check.getTypeAtLocation(kinds);
  const types = new Map<string, ts.Type>();
  for (const prop of check.getPropertiesOfType(kindsType)) types.set(prop.name, check.getTypeOfSymbolAtLocation(prop, kinds));
  checker = { check, anchor: kinds, types };
  return checker;
}

/** Paths of the keys in `o` that its kind's API type does not declare. */
export function unknownFields(o: K8sObject): string[] {
  const { check, anchor, types } = loadChecker();
  const type = types.get(typeKey(o.apiVersion, o.kind));
  if (!type) return [`no declaration for ${o.apiVersion} ${o.kind}`];
  const out: string[] = [];
  walk(o, type, '');
  return out.map((p) => `unknown field ${p}`);

  function walk(value: unknown, t: ts.Type, at: string): void {
    if (value === null || typeof value !== 'object') return;
    let objectType = check.getNonNullableType(t);
    if (objectType.isUnion()) {
      // e.g. IntOrString; only an unambiguous object member can be walked.
      const members = objectType.types.filter((m) => (m.flags & ts.TypeFlags.Object) !== 0);
      if (members.length !== 1) return;
      objectType = members[0]!;
    }
    if (Array.isArray(value)) {
      const element = check.getIndexTypeOfType(objectType, ts.IndexKind.Number);
      if (element) value.forEach((v, i) => walk(v, element, `${at}[${i}]`));
      return;
    }
    const stringIndex = check.getIndexTypeOfType(objectType, ts.IndexKind.String);
    for (const [k, v] of Object.entries(value)) {
      const prop = check.getPropertyOfType(objectType, k);
      if (prop) walk(v, check.getTypeOfSymbolAtLocation(prop, anchor), `${at}.${k}`);
      else if (stringIndex) walk(v, stringIndex, `${at}.${k}`);
      else out.push(`${at}.${k}`.replace(/^\./, ''));
    }
  }
}
