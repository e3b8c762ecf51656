import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { applyFinalizerPolicy, type FinalizerPolicy } from '../../bench/lib/finalizer-policy.ts';
import { FINALIZER } from '../../src/domain/names.ts';
import { installCrd, kubectl, ROOT, type CommandResult } from '../support/ctfleet.ts';
import { eventually, uniqueSuffix } from '../support/stack.ts';

// Tenant namespaces on the stack's real API server: the chart's ValidatingAdmissionPolicy
// and binding (templates/admission-policy.yaml) and its instance-editor ClusterRole
// (templates/rbac-instance-editor.yaml), rendered by helm and applied with kubectl, then
// asked what a team, a platform and an organiser may create and change.
const CHART = join(ROOT, 'charts/ctfleet');
const LABEL = 'ctfleet.io/tenant';

function helm(args: string[]): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile('helm', args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

const ok = (result: CommandResult, what: string): string => {
  assert.equal(result.code, 0, `${what}: ${result.stderr}${result.stdout.slice(0, 2000)}`);
  return result.stdout;
};

/** A ChallengeInstance manifest (JSON, which kubectl reads as YAML). */
function manifest(namespace: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name, namespace }, spec });
}

/** The tenant form: the challenge by reference, nothing about what runs. */
const fromChallenge = (team: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ team, challengeRef: { name: 'web-101' }, ...extra });

/** The direct form organisers use: image, command, env and ports in the instance. */
const direct = (team: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  team,
  challenge: 'web-101',
  image: 'ctfleet-test/web:1',
  command: ['/bin/httpd'],
  args: ['-f', '-p', '8080'],
  env: [{ name: 'GREETING', value: 'hello' }],
  ports: [{ name: 'http', containerPort: 8080 }],
  ...extra,
});

/** Every field a tenant instance may not set: a value to set it to (or change it to) and the rule its refusal states. */
const FIELDS: [string, unknown, string][] = [
  ['image', 'ctfleet-test/echo:1', 'an instance takes its image from spec\\.challengeRef; remove spec\\.image and set spec\\.challengeRef\\.name instead'],
  ['command', ['/bin/sh', '-c', 'cat /flag'], 'an instance takes its command from spec\\.challengeRef'],
  ['args', ['--debug'], 'an instance takes its arguments from spec\\.challengeRef'],
  ['env', [{ name: 'FLAG', value: 'ctf{chosen-by-the-team}' }], 'an instance takes its environment \\(and its flag\\) from spec\\.challengeRef'],
  ['ports', [{ name: 'ssh', containerPort: 22 }], 'an instance takes its ports from spec\\.challengeRef'],
  ['imagePullPolicy', 'Always', 'an instance takes its image pull policy from spec\\.challengeRef; remove spec\\.imagePullPolicy \\(only the default, IfNotPresent, is accepted\\)'],
  ['resources', { memory: '2Gi' }, 'an instance takes its cpu, memory and pids limits from spec\\.challengeRef'],
  ['security', { readOnlyRootFilesystem: false }, 'an instance takes its capabilities, read-only root, tmpfs mounts and runtime from spec\\.challengeRef'],
  ['network', { egress: 'Internet' }, 'an instance takes its network egress from spec\\.challengeRef'],
];

/** The refusal of the chart's policy, naming `field` and the rule, whichever release's policy answered. */
const refusal = (field: string, rule: string): RegExp =>
  new RegExp(`is forbidden: ValidatingAdmissionPolicy '[a-z0-9-]+-tenant-instances' with binding '[a-z0-9-]+-tenant-instances' denied request: spec\\.${field}: in tenant namespaces \\(label ctfleet\\.io/tenant=true\\) ${rule}`);

describe('tenant namespaces: the chart\'s ValidatingAdmissionPolicy', () => {
  const suffix = uniqueSuffix();
  const release = `adm-${suffix}`;
  const policy = `${release}-ctfleet-tenant-instances`;
  const editorRole = `${release}-ctfleet-instance-editor`;
  const tenant = `e2e-tenant-${suffix}`;
  const organiser = `e2e-organiser-${suffix}`;
  const legacy = `e2e-legacy-${suffix}`;
  const teamNamespace = `e2e-team-9-${suffix}`;
  const user = `team-7-${suffix}`;
  let rendered = '';

  /** Whether the policy already refuses a direct-form create in `namespace` (a server-side dry run). */
  const refusesIn = async (namespace: string): Promise<true | undefined> => {
    const result = await kubectl(['create', '--dry-run=server', '-f', '-'], manifest(namespace, 'probe', direct('team-0')));
    return result.code !== 0 && refusal('image', '').test(result.stderr) ? true : undefined;
  };
  const create = (namespace: string, name: string, spec: Record<string, unknown>, ...flags: string[]): Promise<CommandResult> =>
    kubectl(['create', ...flags, '-f', '-'], manifest(namespace, name, spec));
  const patch = (namespace: string, name: string, body: unknown, ...flags: string[]): Promise<CommandResult> =>
    kubectl(['patch', 'chi', name, '-n', namespace, '--type=merge', '-p', JSON.stringify(body), ...flags]);
  const exists = async (namespace: string, name: string): Promise<boolean> => (await kubectl(['get', 'chi', name, '-n', namespace, '-o', 'name'])).code === 0;

  before(async () => {
    await installCrd();
    rendered = ok(await helm(['template', release, CHART, '--show-only', 'templates/admission-policy.yaml', '--show-only', 'templates/rbac-instance-editor.yaml']), 'helm template');
    ok(await kubectl(['apply', '-f', '-'], rendered), 'apply the policy, its binding and the role');
    ok(await kubectl(['create', 'namespace', tenant]), 'create the tenant namespace');
    ok(await kubectl(['label', 'namespace', tenant, `${LABEL}=true`]), 'label it');
    ok(await kubectl(['create', 'namespace', organiser]), 'create the organiser namespace');
    ok(await kubectl(['create', 'namespace', legacy]), 'create the namespace labelled later');
    // A policy and its binding take effect once the API server's informers have them.
    await eventually('the policy refuses a direct-form instance in the tenant namespace', 60_000, () => refusesIn(tenant));
  });

  after(async () => {
    // The legacy instance carries ctfleet's finalizer and no controller runs here.
    await patch(legacy, 'held', { metadata: { finalizers: null } });
    await kubectl(['delete', 'namespace', tenant, organiser, legacy, teamNamespace, '--wait=false', '--ignore-not-found']);
    await kubectl(['delete', '-f', '-', '--ignore-not-found'], rendered);
  });

  test('every field the policy reads is a field of the served ChallengeInstance schema, and each message names its field', async () => {
    // The API server's own type check (status.typeChecking) is written by kube-controller-manager's
    // policy status controller, which the stack does not run: read the expressions against the schema.
    const stored = JSON.parse(ok(await kubectl(['get', 'validatingadmissionpolicy', policy, '-o', 'json']), 'get the policy')) as { spec: { validations: { expression: string; message: string }[] } };
    const crd = JSON.parse(ok(await kubectl(['get', 'crd', 'challengeinstances.ctfleet.io', '-o', 'json']), 'get the CRD')) as { spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } } }[] } };
    const known = Object.keys(crd.spec.versions[0]?.schema.openAPIV3Schema.properties.spec.properties ?? {});
    const read = new Set(stored.spec.validations.flatMap((validation) => [...validation.expression.matchAll(/(?:object|oldObject)\.spec\.(\w+)/g)].map((match) => match[1] ?? '')));
    assert.deepEqual([...read].filter((field) => !known.includes(field)), [], 'fields the schema does not have');
    assert.deepEqual([...read].sort(), [...FIELDS.map(([field]) => field), 'challengeRef', 'team'].sort());
    for (const validation of stored.spec.validations) {
      const field = /spec\.(\w+)/.exec(validation.expression)?.[1] ?? '';
      assert.match(validation.message, new RegExp(`^spec\\.${field}: in tenant namespaces \\(label ctfleet\\.io/tenant=true\\) `), validation.expression);
    }
  });

  describe('in a tenant namespace', () => {
    for (const [field, value, rule] of FIELDS) {
      test(`an instance from a challenge that also sets spec.${field} is refused naming the field, by the policy where the schema allows it, and nothing is stored`, async () => {
        const name = `sets-${field.toLowerCase()}`;
        const spec = fromChallenge('team-7', { [field]: value });
        // The same object in an organiser namespace shows what the CRD's schema alone says of it.
        const schemaAlone = await create(organiser, name, spec, '--dry-run=server');
        const result = await create(tenant, name, spec);
        assert.notEqual(result.code, 0, `spec.${field} was admitted`);
        if (schemaAlone.code === 0) assert.match(result.stderr, refusal(field, rule));
        else assert.match(result.stderr, new RegExp(`spec\\.${field}\\b`), `the schema's own refusal names the field: ${result.stderr}`);
        assert.equal(await exists(tenant, name), false);
      });
    }

    test('the direct form (image, command, args, env, ports, no challengeRef) is refused naming spec.image and the way out', async () => {
      const result = await create(tenant, 'direct', direct('team-7'));
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, refusal('image', 'an instance takes its image from spec\\.challengeRef; remove spec\\.image and set spec\\.challengeRef\\.name instead'));
      assert.equal(await exists(tenant, 'direct'), false);
    });

    test('an instance with only team and challengeRef is admitted', async () => {
      ok(await create(tenant, 'web-101-team-7', fromChallenge('team-7')), 'create from the challenge');
      const stored = JSON.parse(ok(await kubectl(['get', 'chi', 'web-101-team-7', '-n', tenant, '-o', 'json']), 'get')) as { spec: Record<string, unknown> };
      assert.deepEqual([stored.spec.team, stored.spec.challengeRef, stored.spec.image], ['team-7', { name: 'web-101' }, undefined]);
    });

    test('an update that moves the instance to another team or challenge, or back to the direct form, is refused; stopping it and a new ttl are admitted', async () => {
      for (const namespace of [tenant, organiser]) ok(await create(namespace, 'web-101-team-8', fromChallenge('team-8')), `create in ${namespace}`);
      // The team is the CRD's own rule, in every namespace: the schema refuses before the policy looks.
      const teamMessage = /spec\.team: Invalid value: "team-9": spec\.team is immutable/;
      for (const namespace of [tenant, organiser]) {
        const moved = await patch(namespace, 'web-101-team-8', { spec: { team: 'team-9' } });
        assert.notEqual(moved.code, 0, `the team changed in ${namespace}`);
        assert.match(moved.stderr, teamMessage);
      }
      // The same instance in the organiser namespace takes every one of these updates.
      const updates: [string, Record<string, unknown>, RegExp][] = [
        ['challengeRef', { challengeRef: { name: 'pwn-300' } }, refusal('challengeRef', 'an instance keeps the Challenge it was created for; delete it and create a new one')],
        ['the direct form', { challengeRef: null, challenge: 'web-101', image: 'ctfleet-test/web:1', ports: [{ name: 'http', containerPort: 8080 }] }, refusal('image', 'an instance takes its image from spec\\.challengeRef')],
      ];
      for (const [what, spec, message] of updates) {
        const refused = await patch(tenant, 'web-101-team-8', { spec });
        assert.notEqual(refused.code, 0, `${what} changed in the tenant namespace`);
        assert.match(refused.stderr, message);
        ok(await patch(organiser, 'web-101-team-8', { spec }, '--dry-run=server'), `${what} in the organiser namespace`);
      }
      ok(await patch(tenant, 'web-101-team-8', { spec: { desiredState: 'Stopped', ttlSeconds: 7200 } }), 'stop and extend');
      const stored = JSON.parse(ok(await kubectl(['get', 'chi', 'web-101-team-8', '-n', tenant, '-o', 'json']), 'get')) as { spec: { team: string; challengeRef: { name: string }; desiredState: string; ttlSeconds: number } };
      assert.deepEqual([stored.spec.team, stored.spec.challengeRef.name, stored.spec.desiredState, stored.spec.ttlSeconds], ['team-8', 'web-101', 'Stopped', 7200]);
    });
  });

  test("a tenant namespace labelled with a team admits instances of that team only (per-team flags follow spec.team)", async () => {
    ok(await kubectl(['create', 'namespace', teamNamespace]), 'create the team namespace');
    ok(await kubectl(['label', 'namespace', teamNamespace, `${LABEL}=true`, 'ctfleet.io/team=team-9']), 'label it tenant and team-9');
    await eventually('the policy to cover the team namespace', 60_000, () => refusesIn(teamNamespace));
    const other = await create(teamNamespace, 'web-101-team-8', fromChallenge('team-8'));
    assert.notEqual(other.code, 0, 'another team was admitted');
    assert.match(other.stderr, refusal('team', "that carry the label ctfleet\\.io/team an instance is for that label's team only"));
    assert.equal(await exists(teamNamespace, 'web-101-team-8'), false);
    ok(await create(teamNamespace, 'web-101-team-9', fromChallenge('team-9')), "the namespace's own team is admitted");
  });

  test('in a namespace without the label, the direct form is admitted and may change (but for its team, which never does)', async () => {
    ok(await create(organiser, 'web-101-team-7', direct('team-7', { imagePullPolicy: 'Never', resources: { memory: '64Mi' }, network: { egress: 'Internet' } })), 'create the direct form');
    ok(await patch(organiser, 'web-101-team-7', { spec: { env: [{ name: 'GREETING', value: 'bye' }], image: 'ctfleet-test/web:2' } }), 'change env and image');
    const moved = await patch(organiser, 'web-101-team-7', { spec: { team: 'team-9' } });
    assert.notEqual(moved.code, 0, 'the team changed');
    assert.match(moved.stderr, /spec\.team is immutable/);
  });

  test('an instance from before its namespace was labelled cannot change any of those fields, but can be stopped, lose its finalizer and go', async () => {
    const held = direct('team-7', { imagePullPolicy: 'Never', resources: { memory: '64Mi' }, security: { readOnlyRootFilesystem: true }, network: { egress: 'None' } });
    ok(await kubectl(['create', '-f', '-'], JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'ChallengeInstance', metadata: { name: 'held', namespace: legacy, finalizers: [FINALIZER] }, spec: held })), 'create in the direct form');
    ok(await kubectl(['label', 'namespace', legacy, `${LABEL}=true`]), 'label the namespace');
    await eventually('the policy to cover the newly labelled namespace', 60_000, () => refusesIn(legacy));
    for (const [field, value, rule] of FIELDS) {
      const changed = await patch(legacy, 'held', { spec: { [field]: value } });
      assert.notEqual(changed.code, 0, `spec.${field} changed`);
      assert.match(changed.stderr, refusal(field, rule));
    }
    ok(await patch(legacy, 'held', { spec: { desiredState: 'Stopped' } }), 'stop it');
    ok(await patch(legacy, 'held', { metadata: { labels: { note: 'kept' } } }), 'a metadata-only update');
    ok(await kubectl(['delete', 'chi', 'held', '-n', legacy, '--wait=false']), 'delete it');
    // What ctfleet's controller does once the container is gone.
    ok(await patch(legacy, 'held', { metadata: { finalizers: null } }), 'drop the finalizer');
    await eventually('the instance to be gone', 30_000, async () => ((await exists(legacy, 'held')) ? undefined : true));
  });

  test('a namespace user bound to the instance-editor role may create, read and delete instances but not edit them, and the policy holds for them', async () => {
    ok(await kubectl(['create', 'rolebinding', 'team-7-instances', '-n', tenant, `--clusterrole=${editorRole}`, `--user=${user}`]), 'bind the role');
    // A SubjectAccessReview names group and resource exactly; `kubectl auth can-i` guesses them, wrongly
    // for a resource the server does not serve (challenges, before its CRD is installed).
    const can = async (verb: string, resource: string, options: { namespace?: string; group?: string; subresource?: string } = {}): Promise<boolean> => {
      const review = { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, resourceAttributes: { namespace: options.namespace ?? tenant, verb, group: options.group ?? 'ctfleet.io', resource, subresource: options.subresource ?? '' } } };
      return (JSON.parse(ok(await kubectl(['create', '-o', 'json', '-f', '-'], JSON.stringify(review)), 'SubjectAccessReview')) as { status: { allowed: boolean } }).status.allowed;
    };
    await eventually('the RBAC authorizer to see the binding', 10_000, async () => ((await can('create', 'challengeinstances')) ? true : undefined));
    for (const verb of ['create', 'get', 'list', 'watch', 'delete']) assert.ok(await can(verb, 'challengeinstances'), `${verb} instances`);
    for (const verb of ['get', 'list', 'watch']) assert.ok(await can(verb, 'challenges'), `${verb} challenges`);
    for (const verb of ['update', 'patch']) assert.ok(!(await can(verb, 'challengeinstances')), `no ${verb} of instances`);
    assert.ok(!(await can('patch', 'challengeinstances', { subresource: 'status' })), 'no status writes');
    assert.ok(!(await can('create', 'challenges')), 'no challenges of their own');
    assert.ok(!(await can('get', 'secrets', { group: '' })), 'no Secrets');
    assert.ok(!(await can('create', 'challengeinstances', { namespace: organiser })), 'nothing in other namespaces');

    const as = `--as=${user}`;
    const refused = await create(tenant, 'by-user-direct', direct('team-7'), as);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, refusal('image', 'an instance takes its image'));
    ok(await create(tenant, 'by-user', fromChallenge('team-7'), as), 'create from the challenge as the user');
    const edited = await patch(tenant, 'by-user', { spec: { desiredState: 'Stopped' } }, as);
    assert.notEqual(edited.code, 0);
    assert.match(edited.stderr, /cannot patch resource "challengeinstances"/);
    ok(await kubectl(['delete', 'chi', 'by-user', '-n', tenant, as, '--wait=false']), 'delete as the user');
  });

  test('the chart renders no policy with admission.enabled=false, puts a configured label in the binding and the messages, and refuses a malformed label', async () => {
    const off = ok(await helm(['template', release, CHART, '--set', 'admission.enabled=false', '--set', 'rbac.instanceEditor.create=false']), 'template with both off');
    assert.doesNotMatch(off, /kind: ValidatingAdmissionPolicy|instance-editor/);
    const custom = ok(await helm(['template', release, CHART, '--show-only', 'templates/admission-policy.yaml', '--set', 'admission.tenantNamespaceLabel.key=example.org/ctf-teams', '--set', 'admission.tenantNamespaceLabel.value=yes']), 'template with a label of ours');
    assert.match(custom, /matchLabels:\n\s+"example.org\/ctf-teams": "yes"/);
    assert.match(custom, /spec\.image: in tenant namespaces \(label example\.org\/ctf-teams=yes\)/);
    ok(await kubectl(['apply', '--dry-run=server', '-f', '-'], custom), 'the API server accepts it');
    const bad = await helm(['template', release, CHART, '--set', 'admission.tenantNamespaceLabel.key=not a key']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /admission\/tenantNamespaceLabel\/key/);
  });
});

// The chart's MutatingAdmissionPolicy (templates/instance-finalizer-policy.yaml): which
// API version it renders for which cluster, and what the stack's API server then does
// to a ChallengeInstance it creates. instances.test.ts counts a start's writes with it.
describe('the finalizer on create: the chart\'s MutatingAdmissionPolicy', () => {
  const suffix = uniqueSuffix();
  const release = `fin-${suffix}`;
  const namespace = `e2e-finalizer-${suffix}`;
  const TEMPLATE = 'templates/instance-finalizer-policy.yaml';
  const served = (version: string): string[] => ['--api-versions', `admissionregistration.k8s.io/${version}/MutatingAdmissionPolicy`];
  /** The API versions the template renders with these flags ([] when it renders nothing). */
  const versions = async (...flags: string[]): Promise<string[]> => {
    const result = await helm(['template', release, CHART, '--show-only', TEMPLATE, ...flags]);
    if (result.code !== 0 && /could not find template/.test(result.stderr)) return [];
    return [...ok(result, `template ${flags.join(' ')}`).matchAll(/^apiVersion: (\S+)\nkind: (\S+)$/gm)].map((match) => `${match[2]} ${match[1]}`);
  };
  const both = (version: string): string[] => [`MutatingAdmissionPolicy admissionregistration.k8s.io/${version}`, `MutatingAdmissionPolicyBinding admissionregistration.k8s.io/${version}`];
  const createWith = async (name: string, finalizers: string[] | undefined): Promise<string[]> => {
    const body = JSON.parse(manifest(namespace, name, direct('team-1'))) as { metadata: Record<string, unknown> };
    if (finalizers !== undefined) body.metadata.finalizers = finalizers;
    const created = ok(await kubectl(['create', '-o', 'jsonpath={.metadata.finalizers}', '-f', '-'], JSON.stringify(body)), `create ${name}`);
    return created === '' ? [] : (JSON.parse(created) as string[]);
  };
  let policy: FinalizerPolicy | undefined;

  before(async () => {
    await installCrd();
    ok(await kubectl(['create', 'namespace', namespace]), 'create the namespace');
  });

  after(async () => {
    // No controller runs here: the finalizers are taken off by hand.
    const names = ok(await kubectl(['get', 'chi', '-n', namespace, '-o', 'name']), 'list').split('\n').filter((line) => line !== '');
    for (const name of names) await kubectl(['patch', name, '-n', namespace, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
    await policy?.remove();
  });

  test('auto renders the newest version the cluster serves and nothing when it serves none; v1 and v1beta1 force theirs, off renders nothing, anything else is refused naming the field', async () => {
    assert.deepEqual(await versions(), [], 'helm template without the API: nothing');
    assert.deepEqual(await versions(...served('v1beta1')), both('v1beta1'));
    assert.deepEqual(await versions(...served('v1')), both('v1'));
    assert.deepEqual(await versions(...served('v1beta1'), ...served('v1')), both('v1'));
    assert.deepEqual(await versions('--set', 'admission.instanceFinalizer=off', ...served('v1')), []);
    assert.deepEqual(await versions('--set', 'admission.instanceFinalizer=v1'), both('v1'));
    assert.deepEqual(await versions('--set', 'admission.instanceFinalizer=v1beta1'), both('v1beta1'));
    const bad = await helm(['template', release, CHART, '--set', 'admission.instanceFinalizer=on']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /admission\/instanceFinalizer/);
  });

  test('on the stack, the API server adds ctfleet\'s finalizer to an instance it creates, after any the creator set, never twice, and only on create', async () => {
    policy = await applyFinalizerPolicy(release);
    assert.equal(policy.version, 'v1beta1', 'the stack runs Kubernetes 1.35 with the feature gate (hack/stack.sh)');
    assert.deepEqual(await createWith('plain', undefined), [FINALIZER]);
    assert.deepEqual(await createWith('theirs', ['example.org/keep']), ['example.org/keep', FINALIZER]);
    assert.deepEqual(await createWith('ours', [FINALIZER]), [FINALIZER]);
    // An update that takes it off (as the controller does once the container is gone) is left alone.
    ok(await kubectl(['patch', 'chi', 'plain', '-n', namespace, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']), 'take it off');
    assert.equal(ok(await kubectl(['get', 'chi', 'plain', '-n', namespace, '-o', 'jsonpath={.metadata.finalizers}']), 'get'), '');
  });
});
