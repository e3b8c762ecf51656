import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../support/cluster.ts';
import { ROOT } from '../support/ctfleet.ts';
import { uniqueSuffix } from '../support/stack.ts';

// The Helm chart and the plain manifests against the stack's real API server:
// lint, render with several value sets, server-side dry runs, install / upgrade /
// uninstall, schema refusals, least-privilege RBAC, and manifests in step with the chart.
const CHART = join(ROOT, 'charts/ctfleet');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** A chart install may wait on its hooks: 180 s, where the shared runner's default is 120. */
const TIMEOUT_MS = 180_000;
const helm = (...args: string[]): Promise<Result> => run('helm', args, { timeoutMs: TIMEOUT_MS });
const kubectl = (args: string[], stdin?: string): Promise<Result> => run('kubectl', args, { timeoutMs: TIMEOUT_MS, ...(stdin === undefined ? {} : { stdin }) });
const ok = (result: Result, what: string): string => {
  assert.equal(result.code, 0, `${what}: ${result.stderr}${result.stdout.slice(0, 2000)}`);
  return result.stdout;
};

/** Value sets every check runs with. */
const VALUE_SETS: Record<string, string[]> = {
  default: [],
  'external Redis': ['--set', 'redis.mode=external', '--set', 'redis.external.url=redis://redis.example:6379/0'],
  'API off': ['--set', 'api.enabled=false'],
  'Ingress on': ['--set', 'api.ingress.enabled=true', '--set', 'api.ingress.host=ctf.example'],
};

/** Splits rendered YAML into documents that hold an object (kind and name). */
function kindsOf(yaml: string): string[] {
  return yaml
    .split(/^---$/m)
    .map((doc) => ({ kind: /^kind: (\S+)/m.exec(doc)?.[1], name: /^ {2}name: (\S+)/m.exec(doc)?.[1] }))
    .filter((object) => object.kind !== undefined)
    .map((object) => `${object.kind ?? ''}/${object.name ?? ''}`);
}

describe('Helm chart and plain manifests', () => {
  const suffix = uniqueSuffix();
  const namespace = `e2e-chart-${suffix}`;
  const release = `chart-${suffix}`;

  before(async () => {
    ok(await kubectl(['create', 'namespace', namespace]), 'create namespace');
  });
  after(async () => {
    await helm('uninstall', release, '-n', namespace, '--no-hooks', '--wait', '--timeout', '60s');
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  test('helm lint --strict passes with every value set', async () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) ok(await helm('lint', '--strict', CHART, ...values), `lint (${name})`);
  });

  test('every value set renders, and the API server accepts every rendered object (dry-run=server)', async () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const rendered = ok(await helm('template', release, CHART, '-n', namespace, ...values), `template (${name})`);
      const kinds = kindsOf(rendered);
      assert.ok(kinds.includes(`DaemonSet/${release}-ctfleet-worker`), `${name}: a worker DaemonSet in ${kinds.join(', ')}`);
      assert.equal(kinds.some((kind) => kind.startsWith('StatefulSet/')), name !== 'external Redis', `${name}: bundled Redis only in bundled mode`);
      assert.equal(kinds.some((kind) => kind.startsWith('Ingress/')), name === 'Ingress on', `${name}: an Ingress only when asked`);
      assert.equal(kinds.filter((kind) => kind.startsWith('Deployment/')).length, name === 'API off' ? 1 : 2, `${name}: controller (+ api) Deployments`);
      const applied = await kubectl(['apply', '--dry-run=server', '-n', namespace, '-f', '-'], rendered);
      ok(applied, `dry-run=server (${name})`);
      assert.equal(applied.stdout.trim().split('\n').length, kinds.length, `${name}: every object accepted:\n${applied.stdout}`);
    }
  });

  test('the optional ServiceMonitor renders when asked (the stack has no Prometheus Operator CRD to dry-run it against)', async () => {
    const off = ok(await helm('template', release, CHART, '-n', namespace), 'template');
    const on = ok(await helm('template', release, CHART, '-n', namespace, '--set', 'metrics.serviceMonitor.enabled=true'), 'template with ServiceMonitor');
    assert.ok(!kindsOf(off).some((kind) => kind.startsWith('ServiceMonitor/')));
    assert.ok(kindsOf(on).some((kind) => kind.startsWith('ServiceMonitor/')));
    assert.match(on, /apiVersion: monitoring.coreos.com\/v1/);
  });

  test('the uninstall hooks: a pre-delete Job removes the instances, a post-delete Job releases the Challenges, with a role of exactly those calls; off on request, and never in the plain manifests', async () => {
    const rendered = ok(await helm('template', release, CHART, '-n', namespace), 'template');
    const json = ok(await kubectl(['create', '--dry-run=client', '-o', 'json', '-f', '-'], rendered), 'to JSON');
    interface Hooked { kind: string; metadata: { name: string; annotations?: Record<string, string> }; rules?: { resources: string[]; verbs: string[] }[]; spec?: { template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } } }
    const objects = JSON.parse(`[${json.replace(/\}\n\{/g, '},{')}]`) as Hooked[];
    const hooked = objects.filter((object) => object.metadata.annotations?.['helm.sh/hook'] !== undefined);
    const jobs = hooked.filter((object) => object.kind === 'Job').map((job) => [job.metadata.annotations?.['helm.sh/hook'], job.spec?.template.spec.serviceAccountName, job.spec?.template.spec.containers[0]?.args.join(' ')]);
    assert.deepEqual(jobs, [
      ['pre-delete', `${release}-ctfleet-uninstall`, 'uninstall --yes --instances --timeout 300'],
      ['post-delete', `${release}-ctfleet-uninstall`, 'uninstall --yes --challenges --timeout 300'],
    ]);
    assert.deepEqual(hooked.filter((object) => object.kind !== 'Job').map((object) => `${object.kind}/${object.metadata.annotations?.['helm.sh/hook'] ?? ''}`), ['ServiceAccount/pre-delete,post-delete', 'ClusterRole/pre-delete,post-delete', 'ClusterRoleBinding/pre-delete,post-delete']);
    const role = hooked.find((object) => object.kind === 'ClusterRole');
    assert.deepEqual(role?.rules?.map((rule) => `${rule.resources.join(',')}: ${rule.verbs.join(',')}`), ['challengeinstances: get,list,delete', 'challenges: get,list,patch']);
    const off = ok(await helm('template', release, CHART, '-n', namespace, '--set', 'uninstall.removeInstances=false'), 'template without hooks');
    assert.doesNotMatch(off, /helm\.sh\/hook/);
    assert.doesNotMatch(readFileSync(join(ROOT, 'manifests/install/ctfleet.yaml'), 'utf8'), /helm\.sh\/hook|uninstall --yes|ctfleet-uninstall/);
  });

  test('the API Service and Ingress reach only the API port; /healthz, /readyz and /metrics are on port http, scraped through the -metrics Services', async () => {
    const peers = (namespace: string): string => JSON.stringify([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } }]);
    const values = ['--set', 'api.ingress.enabled=true', '--set-json', `networkPolicy.metricsFrom=${peers('monitoring')}`, '--set-json', `networkPolicy.apiFrom=${peers('ingress-nginx')}`];
    // kubectl turns the rendered YAML into JSON objects, printed one after another.
    const json = ok(await kubectl(['create', '--dry-run=client', '-o', 'json', '-f', '-'], ok(await helm('template', release, CHART, '-n', namespace, ...values), 'template')), 'to JSON');
    interface Port { name: string; port?: number; containerPort?: number; targetPort?: string }
    interface K8sObject {
      kind: string;
      metadata: { name: string };
      spec: {
        ports?: Port[];
        rules?: { http: { paths: { backend: { service: { port: { name: string } } } }[] } }[];
        template?: { spec: { containers: { ports: Port[]; env: { name: string; value?: string }[]; livenessProbe: { httpGet: { port: string } }; readinessProbe: { httpGet: { port: string } } }[] } };
        ingress?: { ports: { port: number }[]; from?: { namespaceSelector: { matchLabels: Record<string, string> } }[] }[];
      };
    }
    const objects = JSON.parse(`[${json.replace(/^\}\n\{$/gm, '},{')}]`) as K8sObject[];
    const find = (kind: string, name: string): K8sObject => {
      const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === `${release}-ctfleet-${name}`);
      assert.ok(object, `${kind} ${name} in ${objects.map((candidate) => `${candidate.kind}/${candidate.metadata.name}`).join(', ')}`);
      return object;
    };
    const portsOf = (object: K8sObject): string[] => (object.spec.ports ?? []).map((port) => `${port.name}:${String(port.port)}->${port.targetPort ?? ''}`);
    assert.deepEqual(portsOf(find('Service', 'api')), ['api:80->api'], 'the API Service has the API port only');
    assert.deepEqual(portsOf(find('Service', 'api-metrics')), ['http:8080->http']);
    assert.deepEqual(find('Ingress', 'api').spec.rules?.flatMap((rule) => rule.http.paths.map((path) => path.backend.service.port.name)), ['api']);
    const container = find('Deployment', 'api').spec.template?.spec.containers[0];
    assert.deepEqual(container?.ports.map((port) => `${port.name}:${String(port.containerPort)}`), ['http:8080', 'api:8081']);
    const env = Object.fromEntries(container.env.map((variable) => [variable.name, variable.value]));
    assert.deepEqual([env.CTFLEET_HTTP_PORT, env.CTFLEET_API_PORT], ['8080', '8081']);
    assert.deepEqual([container.livenessProbe.httpGet.port, container.readinessProbe.httpGet.port], ['http', 'http']);
    // Every Service the ServiceMonitor can select names "http" only for the health port.
    for (const service of objects.filter((object) => object.kind === 'Service' && !object.metadata.name.endsWith('-redis'))) {
      for (const port of service.spec.ports ?? []) assert.equal(port.name === 'http', port.targetPort === 'http', `${service.metadata.name} port ${port.name}`);
    }
    const policy = find('NetworkPolicy', 'api').spec.ingress?.map((rule) => `${rule.ports.map((port) => port.port).join(',')} from ${rule.from?.map((peer) => peer.namespaceSelector.matchLabels['kubernetes.io/metadata.name']).join(',') ?? 'any'}`);
    assert.deepEqual(policy, ['8080 from monitoring', '8081 from ingress-nginx']);
    const monitor = ok(await helm('template', release, CHART, '-n', namespace, '--set', 'metrics.serviceMonitor.enabled=true', '--show-only', 'templates/servicemonitor.yaml'), 'ServiceMonitor');
    assert.match(monitor, /endpoints:\n\s+- port: http\n\s+path: \/metrics/);
  });

  test('bad values are refused by the schema, naming the value', async () => {
    const cases: [string, RegExp][] = [
      ['controller.replicas=-1', /controller\/replicas.*-1|replicas.*minimum/],
      ['redis.mode=memcached', /redis\/mode.*(bundled|external)/],
      ['worker.portRange=abc', /worker\/portRange.*'abc'/],
      ['worker.hardening.maxima.memory=lots', /worker\/hardening\/maxima\/memory.*'lots'/],
      ['worker.hardening.log.maxFiles=0', /worker\/hardening\/log\/maxFiles.*minimum/],
      ['flags.existingSecret=Flag_Key', /flags\/existingSecret.*'Flag_Key'/],
    ];
    for (const [value, message] of cases) {
      const result = await helm('template', release, CHART, '--set', value);
      assert.notEqual(result.code, 0, `${value} is refused`);
      assert.match(result.stderr, /values don't meet the specifications of the schema/);
      assert.match(result.stderr, message, `${value}: ${result.stderr}`);
    }
  });

  test('a capability that breaks isolation is refused on worker.hardening.allowedExtraCapabilities unless the unsafe value is set, and the worker gets the security settings', async () => {
    const refused = await helm('template', release, CHART, '--set', 'worker.hardening.allowedExtraCapabilities={SYS_NICE,NET_ADMIN,MKNOD}');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /worker\.hardening\.allowedExtraCapabilities: NET_ADMIN, MKNOD would let a team break out of its instance's isolation .*unsafeAllowDangerousCapabilities/);
    const rendered = ok(
      await helm('template', release, CHART, '--set', 'worker.hardening.allowedExtraCapabilities={SYS_NICE,NET_ADMIN}', '--set', 'worker.hardening.unsafeAllowDangerousCapabilities=true',
        '--set', 'worker.hardening.allowedRuntimes={runsc}', '--set', 'worker.hardening.readOnlyRootFilesystem=true', '--set', 'worker.hardening.maxTmpfsSize=64Mi'),
      'template with the unsafe override',
    );
    for (const [name, value] of [['CTFLEET_ALLOWED_EXTRA_CAPABILITIES', 'SYS_NICE,NET_ADMIN'], ['CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES', 'true'], ['CTFLEET_ALLOWED_RUNTIMES', 'runsc'], ['CTFLEET_READ_ONLY_ROOT_FILESYSTEM', 'true'], ['CTFLEET_MAX_TMPFS_SIZE', '64Mi']]) {
      assert.match(rendered, new RegExp(`- name: ${name}\\n\\s+value: "${value}"`), name);
    }
  });

  test("the worker's privileges follow worker.network.firewall: root with only NET_ADMIN on the host network, or its own user without", async () => {
    const workerPod = async (...values: string[]): Promise<{ hostNetwork?: boolean; containers: { securityContext: Record<string, unknown>; env: { name: string; value?: string }[]; volumeMounts: { mountPath: string }[] }[] }> => {
      const yaml = ok(await helm('template', release, CHART, '--show-only', 'templates/worker-daemonset.yaml', ...values), 'template of the worker');
      const json = ok(await kubectl(['create', '--dry-run=client', '-o', 'json', '-f', '-'], yaml), 'the worker DaemonSet as JSON');
      return (JSON.parse(json) as { spec: { template: { spec: Awaited<ReturnType<typeof workerPod>> } } }).spec.template.spec;
    };
    const guarded = await workerPod();
    const worker = guarded.containers[0] ?? assert.fail('no worker container');
    assert.equal(guarded.hostNetwork, true, 'the rules live in the host network namespace');
    assert.deepEqual(worker.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
    assert.equal(worker.securityContext.runAsUser, 0);
    assert.equal(worker.securityContext.allowPrivilegeEscalation, false);
    assert.equal(worker.securityContext.readOnlyRootFilesystem, true);
    assert.ok(worker.volumeMounts.some((mount) => mount.mountPath === '/run/xtables.lock'));
    for (const [name, value] of [['CTFLEET_FIREWALL', 'on'], ['CTFLEET_NETWORK_RANGE', '10.213.0.0/16'], ['CTFLEET_BLOCKED_RANGES', '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10'], ['CTFLEET_DEFAULT_EGRESS', 'None']]) {
      assert.equal(worker.env.find((variable) => variable.name === name)?.value, value, name);
    }
    const open = await workerPod('--set', 'worker.network.firewall=false', '--set', 'worker.network.clusterRanges={10.244.0.0/16}');
    assert.equal(open.hostNetwork, false);
    const unprivileged = open.containers[0] ?? assert.fail('no worker container');
    assert.deepEqual(unprivileged.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(unprivileged.securityContext.runAsUser, undefined, "the pod's non-root user");
    assert.equal(unprivileged.env.find((variable) => variable.name === 'CTFLEET_FIREWALL')?.value, 'off');
    assert.equal(unprivileged.env.find((variable) => variable.name === 'CTFLEET_CLUSTER_RANGES')?.value, '10.244.0.0/16');
    const refused = await helm('template', release, CHART, '--set', 'worker.network.defaultEgress=Everything');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /defaultEgress/);
    const raw = await helm('template', release, CHART, '--set', 'worker.hardening.capabilities={CHOWN,NET_RAW}');
    assert.notEqual(raw.code, 0, 'NET_RAW kept by every container would spoof on the shared bridge');
    assert.match(raw.stderr, /worker\.hardening\.capabilities: NET_RAW would let every team break out .*unsafeAllowDangerousCapabilities/);
  });

  test('the flag key Secret is generated (64 characters) unless flags.existingSecret names one, and every process is told where it is', async () => {
    interface Rendered { kind: string; metadata: { name: string }; data?: Record<string, string>; rules?: { resourceNames?: string[]; verbs: string[] }[]; subjects?: { name: string }[]; spec?: { template?: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } }
    const render = async (...values: string[]): Promise<Rendered[]> => {
      const json = ok(await kubectl(['create', '--dry-run=client', '-o', 'json', '-f', '-'], ok(await helm('template', release, CHART, '-n', namespace, ...values), 'template')), 'to JSON');
      return JSON.parse(`[${json.replace(/^\}\n\{$/gm, '},{')}]`) as Rendered[];
    };
    const envOf = (objects: Rendered[], name: string): (string | undefined)[] =>
      objects.filter((object) => ['Deployment', 'DaemonSet'].includes(object.kind)).map((object) => object.spec?.template?.spec.containers[0]?.env.find((variable) => variable.name === name)?.value);
    const generated = await render();
    const secret = generated.find((object) => object.kind === 'Secret' && object.metadata.name === `${release}-ctfleet-flag-key`);
    assert.match(Buffer.from(secret?.data?.key ?? '', 'base64').toString(), /^[A-Za-z0-9]{64}$/);
    assert.deepEqual(envOf(generated, 'CTFLEET_FLAG_KEY_SECRET'), Array.from({ length: 3 }, () => `${namespace}/${release}-ctfleet-flag-key`), 'controller, api and worker');
    const role = generated.find((object) => object.kind === 'Role' && object.metadata.name === `${release}-ctfleet-flag-key`);
    assert.deepEqual(role?.rules, [{ apiGroups: [''], resources: ['secrets'], resourceNames: [`${release}-ctfleet-flag-key`], verbs: ['get'] }]);
    const binding = generated.find((object) => object.kind === 'RoleBinding' && object.metadata.name === `${release}-ctfleet-flag-key`);
    assert.deepEqual(binding?.subjects?.map((subject) => subject.name), ['controller', 'worker', 'api'].map((component) => `${release}-ctfleet-${component}`));

    const own = await render('--set', 'flags.existingSecret=event-flag-key', '--set', 'api.enabled=false');
    assert.ok(!own.some((object) => object.kind === 'Secret' && object.metadata.name.endsWith('flag-key')), 'no Secret of the chart when one is named');
    assert.deepEqual(envOf(own, 'CTFLEET_FLAG_KEY_SECRET'), Array.from({ length: 2 }, () => `${namespace}/event-flag-key`));
    assert.deepEqual(own.find((object) => object.kind === 'Role' && object.metadata.name === `${release}-ctfleet-flag-key`)?.rules?.[0]?.resourceNames, ['event-flag-key']);
    assert.deepEqual(own.find((object) => object.kind === 'RoleBinding' && object.metadata.name === `${release}-ctfleet-flag-key`)?.subjects?.map((subject) => subject.name), [`${release}-ctfleet-controller`, `${release}-ctfleet-worker`]);
  });

  test('install creates the objects, upgrade applies changed values, and the service accounts have least privilege', async () => {
    const installed = await helm('install', release, CHART, '-n', namespace, '--set', `watchNamespaces={${namespace}}`);
    ok(installed, 'helm install');
    assert.match(installed.stdout, /STATUS: deployed/);
    assert.match(installed.stdout, /kubectl label node <node-name> ctfleet.io\/docker=true/, 'NOTES say what to do next');
    const objects = ok(await kubectl(['get', 'deployments,daemonsets,statefulsets,services,serviceaccounts,roles,rolebindings,secrets', '-n', namespace, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name']), 'list objects');
    for (const expected of [`deployment.apps/${release}-ctfleet-controller`, `deployment.apps/${release}-ctfleet-api`, `daemonset.apps/${release}-ctfleet-worker`, `statefulset.apps/${release}-ctfleet-redis`, `serviceaccount/${release}-ctfleet-worker`, `secret/${release}-ctfleet-redis`]) {
      assert.ok(objects.split('\n').includes(expected), `${expected} in:\n${objects}`);
    }
    const deployment = JSON.parse(ok(await kubectl(['get', 'deployment', `${release}-ctfleet-controller`, '-n', namespace, '-o', 'json']), 'controller')) as { spec: { replicas: number; template: { spec: { containers: { args: string[]; livenessProbe: { httpGet: { path: string } }; readinessProbe: { httpGet: { path: string } }; securityContext: { readOnlyRootFilesystem: boolean } }[] } } } };
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(container?.livenessProbe.httpGet.path, '/healthz');
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);

    // Least privilege, asked of the API server's own authorizer.
    const sa = (component: string): string => `--as=system:serviceaccount:${namespace}:${release}-ctfleet-${component}`;
    const can = async (component: string, ...args: string[]): Promise<boolean> => (await kubectl(['auth', 'can-i', ...args, sa(component)])).stdout.trim() === 'yes';
    assert.ok(await can('worker', 'patch', 'challengeinstances.ctfleet.io', '--subresource=status', '-n', namespace), 'worker writes instance status');
    assert.ok(!(await can('worker', 'delete', 'secrets', '-n', namespace)), 'worker cannot delete secrets');
    assert.ok(!(await can('worker', 'get', 'secrets', '-n', 'kube-system')), "worker cannot read other namespaces' secrets");
    assert.ok(!(await can('worker', 'delete', 'challengeinstances.ctfleet.io', '-n', namespace)), 'worker cannot delete instances');
    assert.ok(await can('api', 'create', 'challengeinstances.ctfleet.io', '-n', namespace), 'api creates instances');
    assert.ok(!(await can('api', 'list', 'secrets', '-n', namespace)), 'api cannot list secrets');
    assert.ok(await can('api', 'list', 'challenges.ctfleet.io', '-n', namespace), 'the dashboard lists Challenges');
    assert.ok(!(await can('api', 'create', 'challenges.ctfleet.io', '-n', namespace)), 'api cannot create Challenges');
    assert.ok(await can('controller', 'create', 'leases.coordination.k8s.io', '-n', namespace), 'controller takes its lease');
    assert.ok(await can('controller', 'patch', 'challenges.ctfleet.io', '-n', namespace), 'controller puts its finalizer on Challenges');
    assert.ok(await can('controller', 'patch', 'challenges.ctfleet.io', '--subresource=status', '-n', namespace), 'controller writes Challenge status');
    assert.ok(!(await can('controller', 'delete', 'challenges.ctfleet.io', '-n', namespace)), 'controller never deletes a Challenge');
    assert.ok(!(await can('worker', 'patch', 'challenges.ctfleet.io', '-n', namespace)), 'worker does not write Challenges');
    const flagKey = `${release}-ctfleet-flag-key`;
    for (const component of ['controller', 'worker', 'api']) assert.ok(await can(component, 'get', `secret/${flagKey}`, '-n', namespace), `${component} reads the flag key`);
    assert.ok(!(await can('controller', 'get', `secret/${release}-ctfleet-redis`, '-n', namespace)), 'controller reads no other Secret');
    // The API checks flags: static flags and instances' parts are Secrets of the API namespace, named by no rule RBAC could hold.
    assert.ok(await can('api', 'get', 'secrets', '-n', namespace), 'api gets Secrets in the API namespace (here the release namespace, which NOTES warn about)');
    assert.match(installed.stdout, /WARNING: that is the release namespace: to check flags the API may read every Secret in it/);
    for (const verb of ['create', 'update', 'patch', 'delete', 'watch']) assert.ok(!(await can('api', verb, 'secrets', '-n', namespace)), `api cannot ${verb} secrets`);
    assert.ok(!(await can('api', 'get', 'secrets', '-n', 'default')), 'api reads no Secret outside the API namespace');
    for (const verb of ['get', 'list']) assert.ok(await can('api', verb, 'challenges.ctfleet.io', '-n', namespace), `api may ${verb} challenges`);
    assert.ok(!(await can('api', 'create', 'challenges.ctfleet.io', '-n', namespace)), 'api cannot create challenges');
    assert.ok(await can('worker', 'create', 'secrets', '-n', namespace), "worker creates instances' flag Secrets in watched namespaces");
    for (const verb of ['list', 'watch', 'update', 'patch']) assert.ok(!(await can('worker', verb, 'secrets', '-n', namespace)), `worker cannot ${verb} secrets`);
    assert.ok(!(await can('worker', 'create', 'secrets', '-n', 'default')), 'worker creates no Secret outside watched namespaces');
    const readKey = async (): Promise<string> => ok(await kubectl(['get', 'secret', flagKey, '-n', namespace, '-o', 'jsonpath={.data.key}']), 'flag key');
    const keyBefore = await readKey();
    assert.ok(Buffer.from(keyBefore, 'base64').length >= 48, 'a generated key of at least 48 characters');
    for (const component of ['controller', 'worker', 'api']) {
      assert.ok(!(await can(component, '*', '*', '-n', namespace)), `${component} does not get everything`);
      assert.ok(!(await can(component, 'get', 'challengeinstances.ctfleet.io', '-n', 'default')), `${component} stays out of unwatched namespaces`);
    }
    const rules = JSON.parse(ok(await kubectl(['get', 'roles,clusterroles', '-A', '-l', `app.kubernetes.io/instance=${release}`, '-o', 'json']), 'roles')) as { items: { metadata: { name: string }; rules: { apiGroups?: string[]; resources?: string[]; verbs: string[] }[] }[] };
    assert.ok(rules.items.length >= 3, 'one role per component');
    for (const role of rules.items) {
      for (const rule of role.rules) assert.ok(![...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs].includes('*'), `${role.metadata.name} grants no *`);
    }

    ok(await helm('upgrade', release, CHART, '-n', namespace, '--reuse-values', '--set', 'controller.replicas=3', '--set', 'api.enabled=false'), 'helm upgrade');
    const replicas = ok(await kubectl(['get', 'deployment', `${release}-ctfleet-controller`, '-n', namespace, '-o', 'jsonpath={.spec.replicas}']), 'replicas');
    assert.equal(replicas, '3');
    assert.notEqual((await kubectl(['get', 'deployment', `${release}-ctfleet-api`, '-n', namespace])).code, 0, 'the API Deployment went with api.enabled=false');
    const password = (await kubectl(['get', 'secret', `${release}-ctfleet-redis`, '-n', namespace, '-o', 'jsonpath={.data.redis-password}'])).stdout;
    assert.ok(password.length > 0, 'the generated Redis password survives the upgrade');
    assert.equal(await readKey(), keyBefore, 'the generated flag key survives the upgrade (every per-team flag stays the same)');

    // --no-hooks: this release's image is not on any node, so its uninstall Jobs could not
    // run; they run for real in test/e2e/cluster.test.ts, on a cluster with a kubelet.
    ok(await helm('uninstall', release, '-n', namespace, '--no-hooks', '--wait', '--timeout', '60s'), 'helm uninstall');
    const left = ok(await kubectl(['get', 'deployments,daemonsets,statefulsets,services,serviceaccounts,roles,rolebindings,secrets', '-n', namespace, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name']), 'left over');
    assert.equal(left.trim(), '', 'uninstall removed every object');
    ok(await kubectl(['get', 'crd', 'challengeinstances.ctfleet.io', 'challenges.ctfleet.io']), 'the CRDs stay, as Helm leaves CRDs');
  });

  test('the plain manifests are the chart rendered (hack/render-manifests.sh), their CRDs are the chart\'s, and kubectl apply -k accepts them', async () => {
    const fresh = ok(await run('bash', [join(ROOT, 'hack/render-manifests.sh'), '--print'], { timeoutMs: TIMEOUT_MS }), 'render');
    assert.equal(readFileSync(join(ROOT, 'manifests/install/ctfleet.yaml'), 'utf8'), fresh, 'manifests/install/ctfleet.yaml is out of date: run hack/render-manifests.sh');
    const policy = ok(await run('bash', [join(ROOT, 'hack/render-manifests.sh'), '--print-finalizer-policy'], { timeoutMs: TIMEOUT_MS }), 'render the finalizer policy');
    assert.equal(readFileSync(join(ROOT, 'manifests/optional/instance-finalizer-policy.yaml'), 'utf8'), policy, 'manifests/optional/instance-finalizer-policy.yaml is out of date: run hack/render-manifests.sh');
    assert.match(policy, /^apiVersion: admissionregistration\.k8s\.io\/v1\nkind: MutatingAdmissionPolicy$/m);
    const crds = readdirSync(join(ROOT, 'manifests/crds')).sort();
    assert.deepEqual(crds, ['ctfleet.io_challengeinstances.yaml', 'ctfleet.io_challenges.yaml']);
    assert.deepEqual(readdirSync(join(ROOT, 'charts/ctfleet/crds')).sort(), crds, 'the chart ships every CRD');
    for (const file of crds) {
      assert.equal(readFileSync(join(ROOT, 'charts/ctfleet/crds', file), 'utf8'), readFileSync(join(ROOT, 'manifests/crds', file), 'utf8'), `one ${file}`);
    }
    // The namespace must exist for a server-side dry run of the objects in it.
    const created = (await kubectl(['create', 'namespace', 'ctfleet-system'])).code === 0;
    const applied = await kubectl(['apply', '--dry-run=server', '--server-side', '--force-conflicts', '-k', join(ROOT, 'manifests')]);
    if (created) await kubectl(['delete', 'namespace', 'ctfleet-system', '--wait=false']);
    ok(applied, 'apply -k --dry-run=server');
    assert.match(applied.stdout, /daemonset.apps\/ctfleet-worker serverside-applied \(server dry run\)/);
    assert.match(applied.stdout, /customresourcedefinition.apiextensions.k8s.io\/challengeinstances.ctfleet.io serverside-applied \(server dry run\)/);
    assert.match(applied.stdout, /customresourcedefinition.apiextensions.k8s.io\/challenges.ctfleet.io serverside-applied \(server dry run\)/);
  });
});
