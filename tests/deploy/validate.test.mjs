// Validates deploy/k8s offline: both kustomizations render, every object is
// valid against the Kubernetes API schemas, and the settings that matter in
// operation (probes, drain timing, persistence, resources, ...) hold.
//
//   cd tests && npm run test:deploy
//
// Rendering: the real kustomize, as `kubectl kustomize` (kubectl is on the
// project's machine image; a standalone `kustomize build` is used if found
// instead). Debian 12's own kubectl (package kubernetes-client, 1.20) embeds
// kustomize v2, too old for these files, so it is not a fallback.
//
// Validation, two layers, both from the npm package kubernetes-models (4.x,
// generated from the Kubernetes OpenAPI schemas; 5.x needs Node 22):
//   1. each object is instantiated as its apiVersion/kind class and
//      .validate()d: types, required fields, enums, formats. A kind the
//      package does not know fails the test.
//   2. unknown fields: the package's validators accept any extra property,
//      so a misspelt `readinesProbe` would pass 1 and be dropped or refused
//      by the API server (kubectl apply validates strictly). The field names
//      of every type are read from the package's .d.ts declarations and
//      every key of every object is checked against them.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import YAML from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const k8sDir = join(repo, "deploy", "k8s");
const require = createRequire(import.meta.url);
const modelsDir = dirname(require.resolve("kubernetes-models/package.json"));
const apimachineryDir = dirname(
  require.resolve("@kubernetes-models/apimachinery/package.json", { paths: [modelsDir] }),
);

// ---------------------------------------------------------------------------
// Rendering

function findRenderer() {
  for (const [cmd, args] of [
    ["kubectl", ["kustomize"]],
    ["kustomize", ["build"]],
  ]) {
    try {
      execFileSync(cmd, ["version", ...(cmd === "kubectl" ? ["--client"] : [])], {
        stdio: "ignore",
      });
      return { cmd, args };
    } catch {
      /* not installed */
    }
  }
  return null;
}

const renderer = findRenderer();

function render(dir) {
  assert.ok(
    renderer,
    "neither kubectl nor kustomize is installed: install kubectl (>= 1.27, it embeds kustomize v5)",
  );
  const out = execFileSync(renderer.cmd, [...renderer.args, dir], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const docs = YAML.parseAllDocuments(out);
  for (const d of docs) assert.deepEqual(d.errors, [], `YAML error in the rendering of ${dir}`);
  return docs.map((d) => d.toJS()).filter((o) => o !== null);
}

// ---------------------------------------------------------------------------
// Layer 1: kubernetes-models classes

async function modelClass(apiVersion, kind) {
  // "apps/v1" -> kubernetes-models/apps/v1, "v1" -> kubernetes-models/v1
  const file = join(modelsDir, ...apiVersion.split("/"), `${kind}.mjs`);
  if (!/^[A-Za-z0-9.]+(\/[A-Za-z0-9]+)?$/.test(apiVersion) || !existsSync(file)) return null;
  const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
  return mod[kind] ?? null;
}

// ---------------------------------------------------------------------------
// Layer 2: unknown fields, from the .d.ts declarations

// Every .d.ts below dir.
function dtsFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "node_modules") out.push(...dtsFiles(p));
    }
    else if (e.name.endsWith(".d.ts") && e.name !== "index.d.ts") out.push(p);
  }
  return out;
}

// Splits `"a"?: T; "b": { [key: string]: U; };` into [name, type] pairs,
// honouring nested braces and angle brackets in the types.
function properties(body) {
  const props = new Map();
  const re = /"([^"]+)"\??:\s*/g;
  let m;
  while ((m = re.exec(body))) {
    let i = re.lastIndex;
    let depth = 0;
    for (; i < body.length; i++) {
      const c = body[i];
      if (c === "{" || c === "<" || c === "(") depth++;
      else if (c === "}" || c === ">" || c === ")") depth--;
      else if (c === ";" && depth === 0) break;
    }
    props.set(m[1], body.slice(re.lastIndex, i).trim());
    re.lastIndex = i + 1;
  }
  return props;
}

// The interface body that starts at `{` index open.
function block(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(open + 1, i);
  }
  throw new Error("unbalanced braces");
}

// Type table: exported alias (IIoK8s...) and "file#localName" ->
// { props: Map } for interfaces, { opaque: true } for type aliases.
function loadTypes() {
  const types = new Map();
  for (const file of [...dtsFiles(modelsDir), ...dtsFiles(apimachineryDir)]) {
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    const local = new Map();
    for (const m of text.matchAll(/export interface (\w+)(?:\s+extends[^{]*)?\s*\{/g)) {
      local.set(m[1], { props: properties(block(text, m.index + m[0].length - 1)) });
    }
    for (const m of text.matchAll(/export declare type (\w+)\s*=/g)) {
      if (!local.has(m[1])) local.set(m[1], { opaque: true });
    }
    for (const [name, t] of local) types.set(`${file}#${name}`, t);
    for (const m of text.matchAll(/export \{([^}]*)\}/g)) {
      for (const pair of m[1].split(",")) {
        const [from, to] = pair.split(/\s+as\s+/).map((s) => s.trim());
        if (to && local.has(from)) types.set(to, local.get(from));
      }
    }
  }
  return types;
}

const types = loadTypes();

// Checks every key of value against the declared type string; collects
// "path: unknown field" messages. Counts checked objects in stats.
function strictCheck(value, type, path, errors, stats) {
  type = type.trim();
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.*)>$/s.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, i) => strictCheck(v, m[1], `${path}[${i}]`, errors, stats));
    return;
  }
  if ((m = /^\{\s*\[key: string\]:\s*(.*?);?\s*\}$/s.exec(type))) {
    if (typeof value === "object")
      for (const [k, v] of Object.entries(value)) strictCheck(v, m[1], `${path}.${k}`, errors, stats);
    return;
  }
  if (type.startsWith("{")) {
    // An inline object type, e.g. a StatefulSet's volumeClaimTemplates items.
    checkProps(value, { props: properties(type.slice(1, -1)) }, path, errors, stats);
    return;
  }
  if (!/^I\w+$/.test(type)) return; // string, number, boolean, unions of literals
  const t = types.get(type);
  if (!t) throw new Error(`type ${type} (at ${path}) not found in the .d.ts files: parser out of date`);
  checkProps(value, t, path, errors, stats);
}

function checkProps(value, t, path, errors, stats) {
  if (t.opaque || typeof value !== "object" || Array.isArray(value)) return;
  stats.objects++;
  for (const [k, v] of Object.entries(value)) {
    if (!t.props.has(k)) errors.push(`${path}.${k}: unknown field`);
    else strictCheck(v, t.props.get(k), `${path}.${k}`, errors, stats);
  }
}

function strictErrors(obj) {
  const file = join(modelsDir, ...obj.apiVersion.split("/"), `${obj.kind}.d.ts`);
  const t = types.get(`${file}#I${obj.kind}`);
  assert.ok(t, `no declaration for ${obj.apiVersion} ${obj.kind}`);
  const errors = [];
  const stats = { objects: 0 };
  checkProps(obj, t, `${obj.kind}/${obj.metadata?.name}`, errors, stats);
  return { errors, stats };
}

// ---------------------------------------------------------------------------
// Helpers over rendered objects

const find = (objs, kind, name) => objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const podSpecOf = (o) =>
  o.kind === "Pod" ? o.spec : o.kind === "CronJob" ? o.spec.jobTemplate.spec.template.spec : o.spec?.template?.spec;
const allContainers = (ps) => [...(ps.initContainers ?? []), ...(ps.containers ?? [])];
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v) && Object.keys(selector ?? {}).length > 0;

async function validateAll(objs) {
  for (const o of objs) {
    const id = `${o.apiVersion} ${o.kind} ${o.metadata?.name}`;
    const Cls = await modelClass(o.apiVersion, o.kind);
    assert.ok(Cls, `${id}: kind unknown to kubernetes-models (no schema to validate against)`);
    try {
      new Cls(o).validate();
    } catch (e) {
      assert.fail(`${id}: ${e.message}`);
    }
    const { errors, stats } = strictErrors(o);
    assert.deepEqual(errors, [], `${id}: fields the API does not know`);
    assert.ok(stats.objects >= 1, `${id}: strict check walked nothing`);
  }
}

// ---------------------------------------------------------------------------

describe("the validators themselves", () => {
  test("renderer present", () => assert.ok(renderer, "kubectl or kustomize needed"));

  test("schema validation rejects a wrong type and the strict check an unknown field", async () => {
    const Deployment = await modelClass("apps/v1", "Deployment");
    const base = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "x" },
      spec: {
        selector: { matchLabels: { a: "b" } },
        template: {
          metadata: { labels: { a: "b" } },
          spec: { containers: [{ name: "c", image: "i", resources: { limits: { cpu: "1" } } }] },
        },
      },
    };
    assert.doesNotThrow(() => new Deployment(base).validate());
    assert.deepEqual(strictErrors(base).errors, []);
    const wrong = structuredClone(base);
    wrong.spec.template.spec.containers[0].ports = [{ containerPort: "8080" }];
    assert.throws(() => new Deployment(wrong).validate(), /containerPort/);
    const typo = structuredClone(base);
    typo.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: "/readyz", port: 8080 } };
    typo.spec.template.spec.containers[0].resources.limitz = {};
    typo.metadata.label = {};
    assert.deepEqual(strictErrors(typo).errors.sort(), [
      "Deployment/x.metadata.label: unknown field",
      "Deployment/x.spec.template.spec.containers[0].readinesProbe: unknown field",
      "Deployment/x.spec.template.spec.containers[0].resources.limitz: unknown field",
    ]);
    assert.equal(await modelClass("example.com/v1", "Widget"), null);
  });
});

const kinds = (objs) => objs.map((o) => o.kind).sort();

describe("deploy/k8s (base)", () => {
  let objs;
  test("renders", () => {
    objs = render(k8sDir);
    assert.deepEqual(kinds(objs), [
      "ConfigMap",
      "Deployment",
      "HorizontalPodAutoscaler",
      "Namespace",
      "NetworkPolicy",
      "NetworkPolicy",
      "PodDisruptionBudget",
      "Secret",
      "Service",
      "Service",
      "Service",
      "StatefulSet",
    ]);
  });
  test("every object validates against the Kubernetes schemas", async () => validateAll(objs));
  test("operational invariants", () => checkOperational(objs, { loadtest: false }));
});

describe("deploy/k8s/loadtest (overlay)", () => {
  let objs, base;
  test("renders: the base plus one Job", () => {
    objs = render(join(k8sDir, "loadtest"));
    base = render(k8sDir);
    assert.deepEqual(kinds(objs), [...kinds(base), "Job"].sort());
  });
  test("every object validates against the Kubernetes schemas", async () => validateAll(objs));
  test("operational invariants", () => checkOperational(objs, { loadtest: true }));
});

function checkOperational(objs, { loadtest }) {
  // Everything namespaced lands in the one namespace the base creates.
  const ns = find(objs, "Namespace");
  for (const o of objs) if (o.kind !== "Namespace") assert.equal(o.metadata.namespace, ns.metadata.name, `${o.kind}/${o.metadata.name} namespace`);

  // Every container of every workload: requests and limits for cpu and
  // memory, non-root, read-only root filesystem.
  const workloads = objs.filter((o) => podSpecOf(o));
  assert.ok(workloads.length >= 2);
  for (const w of workloads) {
    const ps = podSpecOf(w);
    for (const c of allContainers(ps)) {
      const id = `${w.kind}/${w.metadata.name} container ${c.name}`;
      for (const kind of ["requests", "limits"])
        for (const r of ["cpu", "memory"]) assert.ok(c.resources?.[kind]?.[r], `${id}: resources.${kind}.${r} missing`);
      assert.ok(ps.securityContext?.runAsNonRoot || c.securityContext?.runAsNonRoot, `${id}: runAsNonRoot`);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${id}: readOnlyRootFilesystem`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${id}: allowPrivilegeEscalation`);
    }
  }

  // Gateway: probes, drain timing, listen port = container port = Service target.
  const cm = find(objs, "ConfigMap", "wsgw-config");
  const gw = find(objs, "Deployment", "wsgw");
  const gps = gw.spec.template.spec;
  const wsgw = gps.containers.find((c) => c.name === "wsgw");
  assert.ok(wsgw, "gateway container 'wsgw'");
  assert.ok(wsgw.envFrom.some((e) => e.configMapRef?.name === "wsgw-config"), "gateway loads wsgw-config");
  const http = wsgw.ports.find((p) => p.name === "http");
  assert.equal(http.containerPort, 8080);
  assert.equal(cm.data.WSGW_LISTEN, "0.0.0.0:8080", "listen on all addresses, port 8080");
  const portOf = (p) => (p === "http" ? http.containerPort : p);
  assert.equal(wsgw.readinessProbe?.httpGet?.path, "/readyz", "readiness probe on /readyz");
  assert.equal(portOf(wsgw.readinessProbe.httpGet.port), 8080);
  assert.equal(wsgw.livenessProbe?.httpGet?.path, "/healthz", "liveness probe on /healthz");
  assert.equal(portOf(wsgw.livenessProbe.httpGet.port), 8080);

  const drain = Number(cm.data.WSGW_DRAIN_SECONDS ?? 10); // wsgw's default is 10
  const pre = wsgw.lifecycle?.preStop?.exec?.command;
  assert.ok(pre && pre[0] === "sleep", "preStop sleeps");
  const preStop = Number(pre[1]);
  assert.ok(preStop >= 1 && preStop <= 30, `preStop sleep ${preStop}`);
  assert.ok(
    gps.terminationGracePeriodSeconds > drain + preStop,
    `terminationGracePeriodSeconds ${gps.terminationGracePeriodSeconds} must exceed drain ${drain} + preStop ${preStop}`,
  );
  assert.equal(cm.data.WSGW_WORKERS, "1", "one worker per pod");
  assert.equal(String(wsgw.resources.limits.cpu), "1", "one CPU per pod for one worker");
  assert.equal(gps.securityContext.runAsUser, 10001, "the image's uid (deploy/Dockerfile)");
  assert.ok(gps.topologySpreadConstraints?.length > 0, "topologySpreadConstraints");
  assert.equal(gw.spec.replicas, undefined, "replicas left to the HPA");

  // Secret references resolve (names and keys), secret files are mounted
  // where the ConfigMap says.
  const secret = find(objs, "Secret", "wsgw-secrets");
  for (const w of workloads)
    for (const c of allContainers(podSpecOf(w)))
      for (const e of c.env ?? [])
        if (e.valueFrom?.secretKeyRef) {
          const ref = e.valueFrom.secretKeyRef;
          const s = find(objs, "Secret", ref.name);
          assert.ok(s && ref.key in { ...s.data, ...s.stringData }, `${w.metadata.name}: secret ${ref.name}/${ref.key}`);
        }
  const mount = wsgw.volumeMounts.find((m) => m.name === "secrets");
  assert.equal(gps.volumes.find((v) => v.name === "secrets").secret.secretName, "wsgw-secrets");
  for (const v of ["WSGW_JWT_SECRET_FILE", "WSGW_API_KEY_FILE"]) {
    const key = cm.data[v].slice(mount.mountPath.length + 1);
    assert.ok(cm.data[v].startsWith(mount.mountPath + "/") && key in secret.stringData, `${v} names a mounted key`);
  }
  assert.ok(Buffer.byteLength(secret.stringData["jwt-secret"]) >= 32, "JWT secret >= 32 bytes");
  assert.match(wsgw.env.find((e) => e.name === "WSGW_REDIS").value, /^redis:\/\/:\$\(REDIS_PASSWORD\)@wsgw-redis:6379\//);

  // Service 80 -> 8080 without session affinity; selectors reach pods.
  const svc = find(objs, "Service", "wsgw");
  assert.equal(svc.spec.ports[0].port, 80);
  assert.equal(portOf(svc.spec.ports[0].targetPort), 8080);
  assert.ok((svc.spec.sessionAffinity ?? "None") === "None");
  const podLabels = (o) => o.spec.template.metadata.labels;
  assert.ok(matches(svc.spec.selector, podLabels(gw)), "Service selects the gateway pods");
  assert.ok(matches(gw.spec.selector.matchLabels, podLabels(gw)), "Deployment selector");
  const pdb = find(objs, "PodDisruptionBudget");
  assert.ok(matches(pdb.spec.selector.matchLabels, podLabels(gw)), "PDB selects the gateway pods");
  const hpa = find(objs, "HorizontalPodAutoscaler");
  assert.deepEqual(
    [hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name],
    ["Deployment", "wsgw"],
    "HPA scales the gateway",
  );
  assert.ok(hpa.spec.minReplicas >= 2, "at least 2 gateway pods");
  assert.ok(hpa.spec.metrics.some((m) => m.resource?.name === "cpu"), "HPA on CPU");
  assert.ok(pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable >= 1);

  // Redis: AOF on, data on the claim template, Services reach it.
  const redis = find(objs, "StatefulSet", "wsgw-redis");
  const rc = redis.spec.template.spec.containers[0];
  const argv = [...(rc.command ?? []), ...(rc.args ?? [])];
  const opt = (name) => argv[argv.indexOf(name) + 1];
  assert.ok(argv.includes("--appendonly") && opt("--appendonly") === "yes", "Redis appendonly yes");
  assert.equal(opt("--dir"), "/data");
  const claim = redis.spec.volumeClaimTemplates?.[0]?.metadata?.name;
  assert.ok(claim, "Redis has a PVC template");
  assert.equal(rc.volumeMounts.find((m) => m.name === claim)?.mountPath, "/data", "AOF lands on the PVC");
  assert.ok(find(objs, "Service", redis.spec.serviceName)?.spec.clusterIP === "None", "governing headless Service");
  assert.ok(matches(find(objs, "Service", "wsgw-redis").spec.selector, podLabels(redis)), "wsgw-redis selects Redis");

  // Network policies: gateway 8080 from anywhere; Redis only from the
  // gateway and the load test.
  const npGw = objs.find((o) => o.kind === "NetworkPolicy" && matches(o.spec.podSelector.matchLabels, podLabels(gw)));
  assert.ok(npGw, "NetworkPolicy for the gateway");
  assert.ok(npGw.spec.ingress.some((r) => !r.from && r.ports.some((p) => p.port === 8080)), "gateway 8080 open to all");
  const npRedis = objs.find((o) => o.kind === "NetworkPolicy" && matches(o.spec.podSelector.matchLabels, podLabels(redis)));
  assert.ok(npRedis, "NetworkPolicy for Redis");
  const peers = npRedis.spec.ingress.flatMap((r) => r.from ?? [{ everyone: true }]);
  assert.ok(peers.every((p) => p.podSelector && !p.namespaceSelector && !p.ipBlock), "Redis: pod peers of this namespace only");
  assert.ok(peers.some((p) => matches(p.podSelector.matchLabels, podLabels(gw))), "Redis admits the gateway");

  const job = find(objs, "Job");
  if (!loadtest) {
    assert.equal(job, undefined, "no Job in the base");
    return;
  }
  assert.ok(job, "loadtest Job");
  const bench = job.spec.template.spec.containers[0];
  assert.equal(bench.command?.[0], "wsgw-bench", "the Job runs wsgw-bench");
  assert.equal(bench.image, wsgw.image, "wsgw-bench comes from the gateway's image");
  assert.equal(job.spec.backoffLimit, 0);
  assert.ok(job.spec.activeDeadlineSeconds > 60 && job.spec.activeDeadlineSeconds <= 900, "activeDeadlineSeconds");
  assert.equal(job.spec.template.spec.restartPolicy, "Never");
  const a = bench.args;
  const arg = (name) => a[a.indexOf(name) + 1];
  assert.equal(arg("--url"), `ws://${svc.metadata.name}/ws`, "bench targets the gateway Service");
  assert.equal(arg("--secret-file"), cm.data.WSGW_JWT_SECRET_FILE, "bench mints tokens with the gateway's secret");
  const bmount = bench.volumeMounts.find((m) => arg("--secret-file").startsWith(m.mountPath + "/"));
  assert.ok(bmount, "the secret file is mounted in the Job");
  assert.equal(
    job.spec.template.spec.volumes.find((v) => v.name === bmount.name)?.secret?.secretName,
    "wsgw-secrets",
  );
  assert.match(arg("--redis"), /@wsgw-redis:6379\//);
  assert.ok(Number(arg("--connections")) >= 1000 && Number(arg("--duration")) > 0 && Number(arg("--rate")) > 0);
  assert.ok(
    Number(arg("--duration")) < job.spec.activeDeadlineSeconds,
    "the deadline leaves time for the run itself",
  );
  assert.ok(peers.some((p) => matches(p.podSelector.matchLabels, job.spec.template.metadata.labels)), "Redis admits the load test");
}
