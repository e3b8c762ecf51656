import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_ISOLATION, egressOf, formatCidr, halves, overlaps, parseCidr } from '../../src/domain/isolation.ts';
import { LABELS } from '../../src/domain/names.ts';
import type { FirewallState, NetworkInfo } from '../../src/domain/ports.ts';
import { FIREWALL_HOOKS, FORWARD_CHAIN, firewallRules, hookKey, INPUT_CHAIN, instanceNetworks, planFirewall, planNetworks } from '../../src/worker/isolation-plan.ts';

describe('CIDR arithmetic', () => {
  const cases: [string, string | undefined][] = [
    ['10.213.0.0/16', '10.213.0.0/16'],
    ['10.0.0.1', '10.0.0.1/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['10.0.0.1/8', undefined], // host bits set: a typo for 10.0.0.0/8
    ['10.0.0.0/33', undefined],
    ['256.0.0.0/8', undefined],
    ['10.0.0/8', undefined],
    ['10.0.0.0/08', undefined],
    ['010.0.0.0/8', undefined],
    ['10.0.0.0/8/1', undefined],
    ['', undefined],
  ];
  for (const [text, expected] of cases) {
    test(`${JSON.stringify(text)} → ${String(expected)}`, () => {
      const cidr = parseCidr(text);
      assert.equal(cidr === undefined ? undefined : formatCidr(cidr), expected);
    });
  }

  test('halves split a range into its lower and upper half', () => {
    const range = parseCidr('10.213.0.0/16');
    assert.ok(range !== undefined);
    assert.deepEqual(halves(range).map(formatCidr), ['10.213.0.0/17', '10.213.128.0/17']);
  });

  test('overlap', () => {
    const of = (text: string) => parseCidr(text) ?? assert.fail(text);
    assert.equal(overlaps(of('10.0.0.0/8'), of('10.213.0.0/16')), true);
    assert.equal(overlaps(of('10.213.128.0/17'), of('10.213.0.0/17')), false);
    assert.equal(overlaps(of('172.16.0.0/12'), of('172.17.0.1')), true);
  });
});

describe('instance networks', () => {
  test('one per egress, carved from the range: Internet the lower half, None the upper; inter-container traffic off', () => {
    const networks = instanceNetworks({ range: '10.213.0.0/16' });
    assert.equal(networks.Internet.subnet, '10.213.0.0/17');
    assert.equal(networks.None.subnet, '10.213.128.0/17');
    assert.equal(networks.Internet.masquerade, true);
    assert.equal(networks.None.masquerade, false);
    assert.match(networks.Internet.bridge, /^ctfl-i-[0-9a-f]{8}$/);
    assert.match(networks.None.bridge, /^ctfl-n-[0-9a-f]{8}$/);
    for (const network of Object.values(networks)) {
      assert.ok(network.bridge.length <= 15, 'Linux limits interface names to 15 characters');
      assert.equal(network.labels[LABELS.managedBy], 'ctfleet');
    }
  });

  test('names follow the settings: another range gives other networks, the same range the same', () => {
    assert.deepEqual(instanceNetworks({ range: '10.213.0.0/16' }), instanceNetworks({ range: '10.213.0.0/16' }));
    assert.notEqual(instanceNetworks({ range: '10.214.0.0/16' }).Internet.name, instanceNetworks({ range: '10.213.0.0/16' }).Internet.name);
  });

  const desired = Object.values(instanceNetworks({ range: '10.213.0.0/16' }));
  const info = (name: string, containers: number): NetworkInfo => ({ id: `id-${name}`, name, labels: {}, containers });

  test('missing networks are created', () => {
    assert.deepEqual(
      planNetworks([], desired).map((action) => `${action.type} ${action.network.name}`),
      desired.map((network) => `create ${network.name}`),
    );
  });

  test('present networks: nothing to do (idempotent)', () => {
    assert.deepEqual(planNetworks(desired.map((network) => info(network.name, 3)), desired), []);
  });

  test('an old network is removed once empty, and left to drain while containers use it', () => {
    const current = desired.map((network) => info(network.name, 0));
    assert.deepEqual(planNetworks([...current, info('ctfleet-internet-0ld0ld00', 0)], desired), [{ type: 'remove', network: info('ctfleet-internet-0ld0ld00', 0) }]);
    assert.deepEqual(planNetworks([...current, info('ctfleet-internet-0ld0ld00', 2)], desired), []);
  });
});

describe('firewall rules', () => {
  const rules = firewallRules({ ...DEFAULT_ISOLATION, clusterRanges: ['10.96.0.0/12', '10.244.0.0/16'], dnsServers: ['10.0.0.2'] });
  const forward = rules[FORWARD_CHAIN] ?? [];
  const input = rules[INPUT_CHAIN] ?? [];

  test('replies pass first: published ports keep answering', () => {
    assert.equal(forward[0], '-i ctfl-+ -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN');
    assert.equal(input[0], '-i ctfl-+ -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN');
  });

  test('the node itself: everything new from an instance bridge is dropped in INPUT', () => {
    assert.equal(input.at(-1), '-i ctfl-+ -j DROP');
  });

  test('forwarded: other instances, None egress, link-local, the instance range, blocked and cluster ranges, other Docker networks', () => {
    for (const rule of [
      '-i ctfl-n-+ -j DROP',
      '-i ctfl-+ -o ctfl-+ -j DROP',
      '-d 169.254.0.0/16 -i ctfl-+ -j DROP',
      '-d 10.213.0.0/16 -i ctfl-+ -j DROP',
      '-d 10.0.0.0/8 -i ctfl-+ -j DROP',
      '-d 172.16.0.0/12 -i ctfl-+ -j DROP',
      '-d 192.168.0.0/16 -i ctfl-+ -j DROP',
      '-d 100.64.0.0/10 -i ctfl-+ -j DROP',
      '-d 10.96.0.0/12 -i ctfl-+ -j DROP',
      '-d 10.244.0.0/16 -i ctfl-+ -j DROP',
      '-i ctfl-+ -o docker0 -j DROP',
      '-i ctfl-+ -o br-+ -j DROP',
    ]) {
      assert.ok(forward.includes(rule), `missing: ${rule}`);
    }
  });

  test('listed resolvers: port 53 from Internet bridges only, before every drop', () => {
    const dns = forward.findIndex((rule) => rule.includes('--dport 53'));
    const firstDrop = forward.findIndex((rule) => rule.endsWith('-j DROP'));
    assert.ok(dns > 0 && dns < firstDrop);
    assert.ok(forward.includes('-d 10.0.0.2/32 -i ctfl-i-+ -p udp -m udp --dport 53 -j RETURN'));
    assert.ok(forward.includes('-d 10.0.0.2/32 -i ctfl-i-+ -p tcp -m tcp --dport 53 -j RETURN'));
    assert.ok(!forward.some((rule) => rule.includes('ctfl-n-') && rule.includes('RETURN')), 'None egress gets no exception');
  });

  test('a range listed twice gives one rule', () => {
    const twice = firewallRules({ ...DEFAULT_ISOLATION, clusterRanges: ['10.0.0.0/8'] })[FORWARD_CHAIN] ?? [];
    assert.equal(twice.filter((rule) => rule === '-d 10.0.0.0/8 -i ctfl-+ -j DROP').length, 1);
  });

  test('None instances on the engine\'s default bridge: it is cut off like a None bridge, replies excepted', () => {
    const engine = firewallRules(DEFAULT_ISOLATION, 'docker0');
    const engineForward = engine[FORWARD_CHAIN] ?? [];
    const engineInput = engine[INPUT_CHAIN] ?? [];
    const reply = '-i docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN';
    for (const chain of [engineForward, engineInput]) {
      assert.ok(chain.indexOf(reply) >= 0 && chain.indexOf(reply) < chain.indexOf('-i docker0 -j DROP'), 'replies pass before the drop');
    }
    // Forwarded: nothing new leaves it, to its own containers (bridged), other bridges or anywhere.
    assert.ok(engineForward.indexOf('-i docker0 -j DROP') < engineForward.findIndex((rule) => rule.startsWith('-d ')));
    assert.ok(engineForward.includes('-i ctfl-+ -o docker0 -j DROP'), 'ctfleet\'s bridges still reach nothing on it');
    assert.equal(engineInput.at(-1), '-i docker0 -j DROP', 'the node: nothing new from it');
    // Everything of the plain rules is still there, in the same order.
    const plain = firewallRules(DEFAULT_ISOLATION);
    for (const chain of [FORWARD_CHAIN, INPUT_CHAIN]) {
      assert.deepEqual((engine[chain] ?? []).filter((rule) => !rule.startsWith('-i docker0 ')), plain[chain]);
    }
    // A daemon run with --bridge=br0: that bridge is the one cut off, and docker0 is still out of reach.
    const other = firewallRules(DEFAULT_ISOLATION, 'br0')[FORWARD_CHAIN] ?? [];
    assert.ok(other.includes('-i br0 -j DROP') && other.includes('-i ctfl-+ -o br0 -j DROP') && other.includes('-i ctfl-+ -o docker0 -j DROP'));
  });

  const inPlace = (): FirewallState => ({
    chains: { [FORWARD_CHAIN]: [...forward], [INPUT_CHAIN]: [...input] },
    jumps: Object.fromEntries(FIREWALL_HOOKS.map((hook) => [hookKey(hook), 1])),
    existing: ['INPUT', 'FORWARD', 'DOCKER-USER', FORWARD_CHAIN, INPUT_CHAIN],
  });

  test('all in place: nothing to do (idempotent)', () => {
    assert.deepEqual(planFirewall(inPlace(), rules), { replace: false, insertJumps: [], deleteJumps: [], missingHooks: [] });
  });

  const drift: [string, (state: FirewallState) => void, Partial<ReturnType<typeof planFirewall>>][] = [
    ['a chain flushed by someone', (state) => (state.chains[FORWARD_CHAIN] = []), { replace: true }],
    ['a chain missing', (state) => (state.chains = { [FORWARD_CHAIN]: state.chains[FORWARD_CHAIN] ?? [] }), { replace: true }],
    ['a rule added by someone', (state) => state.chains[INPUT_CHAIN]?.unshift('-j ACCEPT'), { replace: true }],
    ['rules reordered', (state) => state.chains[FORWARD_CHAIN]?.reverse(), { replace: true }],
    ['a jump deleted', (state) => (state.jumps['INPUT>CTFLEET-INPUT'] = 0), { insertJumps: [{ from: 'INPUT', to: INPUT_CHAIN }] }],
    ['a jump doubled by two workers starting at once', (state) => (state.jumps['DOCKER-USER>CTFLEET-FORWARD'] = 3), { deleteJumps: [{ from: 'DOCKER-USER', to: FORWARD_CHAIN }, { from: 'DOCKER-USER', to: FORWARD_CHAIN }] }],
    ['dockerd without iptables: no DOCKER-USER', (state) => (state.existing = state.existing.filter((chain) => chain !== 'DOCKER-USER')), { missingHooks: ['DOCKER-USER'] }],
  ];
  for (const [name, change, expected] of drift) {
    test(`${name}: repaired`, () => {
      const state = inPlace();
      change(state);
      assert.deepEqual(planFirewall(state, rules), { replace: false, insertJumps: [], deleteJumps: [], missingHooks: [], ...expected });
    });
  }
});

describe('egress', () => {
  test("the spec's, else the deployment's default", () => {
    assert.equal(egressOf({}, { defaultEgress: 'None' }), 'None');
    assert.equal(egressOf({ network: {} }, { defaultEgress: 'Internet' }), 'Internet');
    assert.equal(egressOf({ network: { egress: 'Internet' } }, { defaultEgress: 'None' }), 'Internet');
    assert.equal(egressOf({ network: { egress: 'None' } }, { defaultEgress: 'Internet' }), 'None');
  });
});
