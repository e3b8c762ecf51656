import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { kubectl, manifest, prepareNamespace, webSpec } from '../support/ctfleet.ts';
import { uniqueSuffix } from '../support/stack.ts';

/**
 * The Challenge CRD and the ChallengeInstance's challengeRef form, as the real API
 * server enforces them: schema, CEL rules, defaults, printer columns and the
 * descriptions `kubectl explain` shows. No ctfleet process runs here.
 */

const NS = `chal-${uniqueSuffix()}`;

function challengeManifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'ctfleet.io/v1alpha1', kind: 'Challenge', metadata: { name, namespace: NS }, spec });
}

function challengeSpec(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    image: 'ctfleet-test/web:1',
    ports: [{ name: 'http', containerPort: 8080 }],
    env: [{ name: 'GREETING', value: 'hello' }],
    resources: { cpu: '250m', memory: '64Mi', pids: 64 },
    lifetime: { defaultSeconds: 1800, maxSeconds: 7200 },
    readiness: { timeoutSeconds: 30 },
    flag: { kind: 'PerTeam' },
    ...extra,
  };
}

function refSpec(team: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { team, challengeRef: { name: 'web-101' }, ...extra };
}

async function getJson(...args: string[]): Promise<{ spec: Record<string, unknown> }> {
  const result = await kubectl(['get', ...args, '-n', NS, '-o', 'json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as { spec: Record<string, unknown> };
}

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  allOf?: Schema[];
  $ref?: string;
}

/** Every field path under `schema`, with whether it has a description, and the paths of object fields. */
function fieldsOf(schema: Schema, prefix: string, out: { path: string; described: boolean; isObject: boolean }[] = []): typeof out {
  const element = schema.items ?? schema;
  for (const [name, field] of Object.entries(element.properties ?? {})) {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    const inner = field.items ?? field;
    // metadata is the API server's ObjectMeta, described by Kubernetes itself.
    const referenced = field.$ref !== undefined || field.allOf !== undefined;
    out.push({ path, described: (field.description ?? '').trim() !== '' || (referenced && name === 'metadata'), isObject: inner.properties !== undefined });
    if (!referenced) fieldsOf(field, path, out);
  }
  return out;
}

describe('the Challenge CRD and the challengeRef form on the API server', () => {
  before(async () => {
    await prepareNamespace(NS);
  });

  after(async () => {
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('a Challenge is stored with its defaults, and an instance naming it takes none of the container fields', async () => {
    const applied = await kubectl(['apply', '-f', '-'], [challengeManifest('web-101', challengeSpec()), manifest(NS, 'web-101-team-7', refSpec('team-7', { ttlSeconds: 3600 }))].join('\n'));
    assert.equal(applied.code, 0, applied.stderr);

    const challenge = await getJson('challenge', 'web-101');
    assert.equal(challenge.spec.imagePullPolicy, 'IfNotPresent');
    assert.deepEqual(challenge.spec.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    assert.deepEqual(challenge.spec.flag, { kind: 'PerTeam', format: 'flag{%s}', delivery: 'Env', env: 'FLAG', path: '/flag/flag.txt' });

    const instance = await getJson('chi', 'web-101-team-7');
    // imagePullPolicy has no default on the instance: a default would break its own rule with challengeRef.
    assert.deepEqual(instance.spec, { team: 'team-7', challengeRef: { name: 'web-101' }, ttlSeconds: 3600, desiredState: 'Running', priority: 0 });
  });

  test('the direct form still works, with or without imagePullPolicy', async () => {
    const applied = await kubectl(['apply', '-f', '-'], [manifest(NS, 'direct', webSpec('team-8')), manifest(NS, 'direct-default-pull', webSpec('team-9', { imagePullPolicy: undefined }))].join('\n'));
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal((await getJson('chi', 'direct')).spec.imagePullPolicy, 'Never');
    assert.equal((await getJson('chi', 'direct-default-pull')).spec.imagePullPolicy, undefined, 'IfNotPresent is the default in code, not in the schema');
  });

  test('kubectl get chal shows the image, the flag kind, the instance counts from status, and the age', async () => {
    const patched = await kubectl(['patch', 'chal', 'web-101', '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { observedGeneration: 1, instances: { total: 2, running: 1 } } })]);
    assert.equal(patched.code, 0, patched.stderr);
    const table = await kubectl(['get', 'chal', '-n', NS]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME\s+IMAGE\s+FLAG\s+INSTANCES\s+RUNNING\s+POOL\s+IDLE\s+AGE$/m);
    // No warm pool: its two columns are blank.
    assert.match(table.stdout, /^web-101\s+ctfleet-test\/web:1\s+PerTeam\s+2\s+1\s+\S+$/m);
    const spec = await getJson('chal', 'web-101');
    assert.equal(spec.spec.image, 'ctfleet-test/web:1', 'a status patch leaves the spec alone: status is a subresource');
  });

  test('kubectl get chi shows the direct form\'s challenge, and -o wide the Challenge an instance names', async () => {
    const table = await kubectl(['get', 'chi', '-n', NS]);
    assert.match(table.stdout, /^NAME\s+TEAM\s+CHALLENGE\s+PHASE\s+ENDPOINT\s+NODE\s+AGE$/m);
    assert.match(table.stdout, /^direct\s+team-8\s+web-101\s+/m);
    const wide = await kubectl(['get', 'chi', '-n', NS, '-o', 'wide']);
    assert.match(wide.stdout, /^NAME\s+TEAM\s+CHALLENGE\s+PHASE\s+ENDPOINT\s+NODE\s+CHALLENGE REF\s+REASON\s+EXPIRES\s+AGE$/m);
    // Empty cells are blank, so read the columns by their offsets in the header.
    const cell = (row: string, column: string): string => {
      const [header = ''] = wide.stdout.split('\n');
      const start = header.indexOf(column);
      const next = header.slice(start + column.length).search(/\S/);
      return row.slice(start, next < 0 ? undefined : start + column.length + next).trim();
    };
    const rows = new Map(wide.stdout.split('\n').slice(1).filter(Boolean).map((row) => [row.split(/\s+/)[0], row]));
    assert.equal(cell(rows.get('web-101-team-7') ?? '', 'CHALLENGE REF'), 'web-101');
    assert.equal(cell(rows.get('web-101-team-7') ?? '', 'CHALLENGE '), '', 'an instance of a Challenge has no spec.challenge');
    assert.equal(cell(rows.get('direct') ?? '', 'CHALLENGE '), 'web-101');
    assert.equal(cell(rows.get('direct') ?? '', 'CHALLENGE REF'), '');
  });

  describe('refusals name the field and the rule', () => {
    const owned: [string, unknown, string][] = [
      ['image', 'ctfleet-test/web:1', 'the image comes from the Challenge'],
      ['imagePullPolicy', 'Always', 'the pull policy comes from the Challenge'],
      ['command', ['sh'], 'the command comes from the Challenge'],
      ['args', ['-c', 'id'], 'the args come from the Challenge'],
      ['env', [{ name: 'GREETING', value: 'x' }], 'the env comes from the Challenge'],
      ['ports', [{ name: 'http', containerPort: 80 }], 'the ports come from the Challenge'],
      ['resources', { cpu: '1' }, 'the limits come from the Challenge'],
      ['security', { readOnlyRootFilesystem: false }, 'the security settings come from the Challenge'],
      ['network', { egress: 'Internet' }, 'the network settings come from the Challenge'],
      ['challenge', 'web-101', 'the challenge is spec.challengeRef.name'],
    ];
    const instanceRefusals: [string, Record<string, unknown>, RegExp][] = [
      ...owned.map(([field, value, why]): [string, Record<string, unknown>, RegExp] => [
        `an instance with challengeRef and ${field}`,
        refSpec('team-1', { [field]: value }),
        new RegExp(`spec\\.${field}: Forbidden: spec\\.${field} must be absent when spec\\.challengeRef is set: ${why.replaceAll('.', '\\.')}`),
      ]),
      ['an instance with neither image nor challengeRef', { team: 'team-1', challenge: 'web-101', ports: [{ name: 'http', containerPort: 80 }] }, /spec\.image: Required value: spec\.image is required unless spec\.challengeRef is set: set exactly one of spec\.image and spec\.challengeRef/],
      ['a direct instance without a challenge', webSpec('team-1', { challenge: undefined }), /spec\.challenge: Required value: spec\.challenge is required unless spec\.challengeRef is set/],
      ['a direct instance without ports', webSpec('team-1', { ports: undefined }), /spec\.ports: Required value: spec\.ports is required unless spec\.challengeRef is set/],
      ['a challengeRef that is not a DNS label', refSpec('team-1', { challengeRef: { name: 'Web_101' } }), /spec\.challengeRef\.name: Invalid value: "Web_101": spec\.challengeRef\.name in body should match/],
      ['a challengeRef without a name', refSpec('team-1', { challengeRef: {} }), /spec\.challengeRef\.name: Required value/],
    ];
    for (const [what, spec, message] of instanceRefusals) {
      test(`the API server refuses ${what}`, async () => {
        const result = await kubectl(['apply', '--dry-run=server', '-f', '-'], manifest(NS, 'bad-instance', spec));
        assert.notEqual(result.code, 0, 'refused');
        assert.match(result.stderr, message);
      });
    }

    const challengeRefusals: [string, Record<string, unknown>, RegExp][] = [
      ['a Challenge whose default lifetime is above its maximum', challengeSpec({ lifetime: { defaultSeconds: 7201, maxSeconds: 7200 } }), /spec\.lifetime\.defaultSeconds: Invalid value: .*spec\.lifetime\.defaultSeconds must be at most spec\.lifetime\.maxSeconds/],
      ['a lifetime above 30 days', challengeSpec({ lifetime: { maxSeconds: 2_592_001 } }), /spec\.lifetime\.maxSeconds: Invalid value: 2592001: spec\.lifetime\.maxSeconds in body should be less than or equal to 2592000/],
      ['a Static flag without secretKeyRef', challengeSpec({ flag: { kind: 'Static' } }), /spec\.flag\.static: Required value: spec\.flag\.static is required when spec\.flag\.kind is Static/],
      ['a static secret on a PerTeam flag', challengeSpec({ flag: { kind: 'PerTeam', static: { secretKeyRef: { name: 'flags', key: 'web' } } } }), /spec\.flag\.static: Forbidden: spec\.flag\.static must be absent unless spec\.flag\.kind is Static/],
      ['a flag format without %s', challengeSpec({ flag: { kind: 'PerTeam', format: 'CTF{fixed}' } }), /spec\.flag\.format: Invalid value: "CTF\{fixed\}": spec\.flag\.format must contain exactly one %s, where the secret part goes/],
      ['a flag format with two %s', challengeSpec({ flag: { kind: 'PerInstance', format: 'CTF{%s-%s}' } }), /spec\.flag\.format: Invalid value: "CTF\{%s-%s\}": spec\.flag\.format must contain exactly one %s/],
      ['an unknown flag kind', challengeSpec({ flag: { kind: 'PerPlayer' } }), /spec\.flag\.kind: Unsupported value: "PerPlayer"/],
      ['a relative flag path', challengeSpec({ flag: { kind: 'PerTeam', delivery: 'File', path: 'flag.txt' } }), /spec\.flag\.path: Invalid value: "flag\.txt": spec\.flag\.path in body should match/],
      ['a flag file under /proc', challengeSpec({ flag: { kind: 'PerTeam', delivery: 'File', path: '/proc/flag' } }), /spec\.flag\.path: Invalid value: "\/proc\/flag": spec\.flag\.path must not be under \/proc, \/sys or \/dev/],
      ['an env variable that shadows the flag\'s', challengeSpec({ env: [{ name: 'FLAG', value: 'fake' }] }), /spec\.env: Invalid value: .*spec\.env must not set the variable that delivers the flag \(spec\.flag\.env\)/],
      ['a readiness timeout of 0', challengeSpec({ readiness: { timeoutSeconds: 0 } }), /spec\.readiness\.timeoutSeconds: Invalid value: 0: spec\.readiness\.timeoutSeconds in body should be greater than or equal to 1/],
      ['a Challenge without an image', challengeSpec({ image: undefined }), /spec\.image: Required value/],
      ['a Challenge without ports', challengeSpec({ ports: undefined }), /spec\.ports: Required value/],
      ['duplicate port names, as on an instance', challengeSpec({ ports: [{ name: 'a', containerPort: 80 }, { name: 'a', containerPort: 81 }] }), /spec\.ports: Invalid value: .*port names must be unique/],
      ['a malformed memory quantity, as on an instance', challengeSpec({ resources: { memory: '12 bytes' } }), /spec\.resources\.memory: Invalid value: "12 bytes": must be a quantity between 6Mi/],
    ];
    for (const [what, spec, message] of challengeRefusals) {
      test(`the API server refuses ${what}`, async () => {
        const result = await kubectl(['apply', '--dry-run=server', '-f', '-'], challengeManifest('bad-challenge', spec));
        assert.notEqual(result.code, 0, 'refused');
        assert.match(result.stderr, message);
      });
    }

    test('spec.team is set once: the API server refuses to move an instance, direct or of a Challenge, to another team', async () => {
      // Its container, labels and a per-team flag are the team's: another team gets an instance of its own.
      for (const [name, spec] of [['team-once-ref', refSpec('team-1')], ['team-once-direct', webSpec('team-1')]] as const) {
        const created = await kubectl(['apply', '-f', '-'], manifest(NS, name, spec));
        assert.equal(created.code, 0, created.stderr);
        const moved = await kubectl(['patch', 'challengeinstance', name, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { team: 'team-2' } })]);
        assert.notEqual(moved.code, 0, `${name}: refused`);
        assert.match(moved.stderr, /spec\.team: Invalid value: "team-2": spec\.team is immutable: a container and its per-team flag belong to one team; create another instance for another team/);
        const kept = await getJson('challengeinstance', name);
        assert.equal(kept.spec.team, 'team-1', `${name}: the team is unchanged`);
        // Other fields still change.
        const stopped = await kubectl(['patch', 'challengeinstance', name, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { desiredState: 'Stopped' } })]);
        assert.equal(stopped.code, 0, stopped.stderr);
      }
    });

    test('the API server refuses a Challenge whose name is not a DNS label, as instances could not name it', async () => {
      const result = await kubectl(['apply', '--dry-run=server', '-f', '-'], challengeManifest('web.101', challengeSpec()));
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /metadata\.name must be a DNS label/);
    });

    test('a Static flag with its secretKeyRef, and a File flag without an env clash, are accepted', async () => {
      const result = await kubectl(
        ['apply', '--dry-run=server', '-f', '-'],
        [
          challengeManifest('static', challengeSpec({ flag: { kind: 'Static', format: 'CTF{%s}', static: { secretKeyRef: { name: 'web-101-flag', key: 'flag' } } } })),
          challengeManifest('file', challengeSpec({ env: [{ name: 'FLAG', value: 'decoy' }], flag: { kind: 'PerInstance', delivery: 'File', path: '/srv/flag' } })),
        ].join('\n'),
      );
      assert.equal(result.code, 0, result.stderr);
    });
  });

  describe('every field has a description, as kubectl explain shows it', () => {
    for (const [kind, short] of [['ChallengeInstance', 'chi'], ['Challenge', 'chal']] as const) {
      test(`every field of ${kind} is described, at every depth`, async () => {
        const raw = await kubectl(['get', '--raw', '/openapi/v3/apis/ctfleet.io/v1alpha1']);
        assert.equal(raw.code, 0, raw.stderr);
        const document = JSON.parse(raw.stdout) as { components: { schemas: Record<string, Schema> } };
        const schema = document.components.schemas[`io.ctfleet.v1alpha1.${kind}`];
        assert.ok(schema, `the API server publishes ${kind}`);
        assert.notEqual((schema.description ?? '').trim(), '', `${kind} itself is described`);
        const fields = fieldsOf(schema, '');
        assert.ok(fields.length > 40, `${kind} has its fields (${fields.length})`);
        assert.deepEqual(fields.filter((field) => !field.described).map((field) => field.path), [], 'fields without a description');

        // What people see: kubectl explain of every object, with its fields' descriptions.
        for (const path of ['', ...fields.filter((field) => field.isObject && field.path !== 'metadata').map((field) => field.path)]) {
          const explained = await kubectl(['explain', path === '' ? short : `${short}.${path}`]);
          assert.equal(explained.code, 0, explained.stderr);
          assert.doesNotMatch(explained.stdout, /<no description>|<empty>/, `kubectl explain ${short}.${path}`);
        }
      });
    }

    test('kubectl explain chi.spec describes the spec and the fields it used to leave bare', async () => {
      const explained = await kubectl(['explain', 'chi.spec']);
      assert.equal(explained.code, 0, explained.stderr);
      // kubectl wraps descriptions at 80 columns: compare with the line breaks folded.
      const text = explained.stdout.replace(/\s+/g, ' ');
      assert.match(text, /DESCRIPTION: What is wanted: the team, the challenge/);
      for (const description of [
        "args <[]string> Replaces the image's command",
        "command <[]string> Replaces the image's entrypoint",
        'desiredState <string> enum: Running, Stopped Running (the default) keeps a container running',
        'env <[]Object> Environment variables of the container',
        'imagePullPolicy <string> enum: Always, IfNotPresent, Never When the node pulls the image',
        "challengeRef <Object> The Challenge, in this instance's namespace, that this instance runs",
      ]) {
        assert.ok(text.includes(description), description);
      }
    });
  });
});
