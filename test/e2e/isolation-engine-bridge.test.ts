import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { DockerNetworks } from '../../src/adapters/docker/network-runtime.ts';
import { IptablesFirewall } from '../../src/adapters/firewall/iptables.ts';
import { firewallRules } from '../../src/worker/isolation-plan.ts';
import { CtfleetError } from '../../src/domain/errors.ts';
import { BRIDGE_FILTERING_SETTING, DEFAULT_ISOLATION } from '../../src/domain/isolation.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { NodeIsolation } from '../../src/worker/node-isolation.ts';
import { CtfleetProcess, fetchText, kubectl, prepareNamespace, webSpec, type Instances } from '../support/ctfleet.ts';
import { chainRules, filterTable, isolationProblems, NETWORKS, reachesFrom, removeTenants, Tenants, startNodeService, type NodeService } from '../support/isolation.ts';
import { logProblems } from '../support/logs.ts';
import { stackConfig, uniqueSuffix } from '../support/stack.ts';

// CTFLEET_NONE_NETWORK=engine-default: None instances join the Docker engine's
// default bridge (docker0), where Docker sets up no DNS resolver per container,
// and the worker firewalls that bridge as a None network. The same hostile
// tenant as in isolation.test.ts, from inside its container: the other team on
// the same bridge, the node and the Internet instance are out of reach. Traffic
// goes only to this machine's own containers and gateways.

const suffix = uniqueSuffix();
const NS = `e2e-isoeng-${suffix}`;
const ENGINE_GATEWAY = '172.17.0.1';

describe('None instances on the engine\'s default bridge reach their own container and nothing else', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;
  let nodeService: NodeService;
  const tenants = new Tenants();
  // What a worker of the default settings leaves: its two networks and its rules (every other test expects them).
  const restoreDefaultIsolation = (): Promise<void> =>
    new NodeIsolation({ runtime: new DockerNetworks(docker), firewall: new IptablesFirewall(), policy: DEFAULT_ISOLATION, logger: createLogger('test', 'silent') }).ensure();

  const startCtfleet = (run: number): CtfleetProcess =>
    new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: `{ctfleet-e2e-isoeng-${suffix}}`,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-isoeng-node',
        CTFLEET_LEADER_ELECTION: 'false',
        CTFLEET_BIND_ADDRESS: '0.0.0.0',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '25100-25199',
        CTFLEET_SWEEP_INTERVAL_SECONDS: '2',
        CTFLEET_NONE_NETWORK: 'engine-default',
      },
      `e2e-isolation-engine-${suffix}-${String(run)}`,
    );

  before(async () => {
    assert.equal(readFileSync(BRIDGE_FILTERING_SETTING, 'utf8').trim(), '1', 'bridged traffic passes iptables on this machine (br_netfilter)');
    docker = createDockerClient(stackConfig().docker);
    ({ instances } = await prepareNamespace(NS));
    nodeService = await startNodeService();
    ctfleet = startCtfleet(1);
    const specs: Record<string, Record<string, unknown>> = {
      a: webSpec('team-a'), // the default egress: None
      b: webSpec('team-b', { network: { egress: 'None' } }),
      c: webSpec('team-c', { network: { egress: 'Internet' } }),
    };
    await tenants.run(docker, instances, NS, specs);
  });

  after(async () => {
    await removeTenants(docker, NS, ctfleet);
    await restoreDefaultIsolation();
    await nodeService.close();
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('None instances join the default bridge, Internet instances ctfleet\'s own', async () => {
    const expected: Record<string, string> = { a: 'bridge', b: 'bridge', c: NETWORKS.Internet.name };
    for (const [name, network] of Object.entries(expected)) {
      const inspected = await docker.getContainer(tenants.containerOf(name)).inspect();
      assert.deepEqual(Object.keys(inspected.NetworkSettings.Networks), [network], `${name} is on ${network} only`);
    }
    // The engine's own setting lets its containers talk: only the worker's rules stand between A and B.
    const engine = (await docker.getNetwork('bridge').inspect()) as { Options: Record<string, string> };
    assert.notEqual(engine.Options['com.docker.network.bridge.enable_icc'], 'false');
  });

  test('the rules cut the default bridge off like a None bridge, replies excepted', async () => {
    const table = await filterTable();
    const forward = chainRules(table, 'CTFLEET-FORWARD');
    const input = chainRules(table, 'CTFLEET-INPUT');
    for (const chain of [forward, input]) {
      const reply = chain.indexOf('-i docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN');
      assert.ok(reply >= 0 && reply < chain.indexOf('-i docker0 -j DROP'), chain.join('\n'));
    }
    assert.ok(forward.includes('-i ctfl-+ -o docker0 -j DROP'));
  });

  test("A's endpoint answers from the host; from A's shell, B on the same bridge, C, and the node are out of reach", async () => {
    const a = tenants.containerOf('a');
    assert.equal(await reachesFrom(a, '127.0.0.1', 8080), true, 'the probe works inside A (the control for every refusal below)');
    assert.match(await fetchText(tenants.running.get('a')?.status?.endpoints?.[0]?.url ?? ''), /hello team-a/);
    for (const victim of ['b', 'c']) {
      assert.match(await fetchText(`http://${tenants.address.get(victim) ?? ''}:8080/`), new RegExp(`hello team-${victim}`), `${victim} answers the host on its address`);
      assert.equal(await reachesFrom(a, tenants.address.get(victim) ?? '', 8080), false, `A reached ${victim} at ${tenants.address.get(victim) ?? ''}`);
      for (const gateway of [ENGINE_GATEWAY, NETWORKS.Internet.subnet.replace(/\.0\/\d+$/, '.1')]) {
        assert.match(await fetchText(`http://${gateway}:${tenants.hostPortOf(victim)}/`), new RegExp(`hello team-${victim}`), 'the host reaches the published port there');
        assert.equal(await reachesFrom(a, gateway, tenants.hostPortOf(victim)), false, `A reached ${victim}'s published port through ${gateway}`);
      }
    }
    assert.equal(await fetchText(`http://${ENGINE_GATEWAY}:${nodeService.port}/`), 'node service', 'the host reaches the node service on the gateway');
    assert.equal(await reachesFrom(a, ENGINE_GATEWAY, nodeService.port), false, 'A reached a service on the node through its gateway');
    assert.equal(await reachesFrom(tenants.containerOf('c'), tenants.address.get('a') ?? '', 8080), false, 'the Internet instance reached A');
  });

  test('its logs keep the logging rules, and the worker says where None instances live', () => {
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
    assert.match(readFileSync(ctfleet.logFile, 'utf8'), /"noneNetwork":"bridge \(docker0\)"/);
  });

  test('where bridged traffic skips iptables, a worker refuses to start and None starts wait, naming the setting', async () => {
    // The machine's own setting is 1 (checked above) and pods of the local cluster rely on it: told 0 instead.
    class Unfiltered extends IptablesFirewall {
      override filtersBridgedTraffic(): Promise<boolean> {
        return Promise.resolve(false);
      }
    }
    const isolation = new NodeIsolation({ runtime: new DockerNetworks(docker), firewall: new Unfiltered(), policy: { ...DEFAULT_ISOLATION, noneNetwork: 'engine-default' }, logger: createLogger('test', 'silent') });
    await assert.rejects(isolation.ensure(), (error: unknown) => error instanceof CtfleetError && error.retry === 'permanent' && /bridge-nf-call-iptables is not 1/.test(error.message));
    await assert.rejects(isolation.networkFor('None'), (error: unknown) => error instanceof CtfleetError && error.retry === 'transient' && /bridge-nf-call-iptables/.test(error.message));
    // The rules were written all the same: what does not depend on bridged traffic still holds.
    assert.ok(chainRules(await filterTable(), 'CTFLEET-INPUT').includes('-i docker0 -j DROP'));
  });

  test('the control: with the docker0 rules gone, A reaches B on the same bridge, so the drop was what stopped it', async () => {
    await ctfleet.stop();
    // Someone rewrites ctfleet's chains as they are without engine-default.
    await new IptablesFirewall().replaceChains(firewallRules(DEFAULT_ISOLATION));
    assert.equal(await reachesFrom(tenants.containerOf('a'), tenants.address.get('b') ?? '', 8080), true, 'A reaches B with ctfleet\'s docker0 rules gone');
  });

  test('a worker switched back to ctfleet\'s own bridge keeps the default bridge cut off while our containers are on it', async () => {
    await restoreDefaultIsolation();
    const forward = chainRules(await filterTable(), 'CTFLEET-FORWARD');
    assert.ok(forward.includes('-i docker0 -j DROP'), forward.join('\n'));
    assert.equal(await reachesFrom(tenants.containerOf('a'), tenants.address.get('b') ?? '', 8080), false, 'A reached B after the switch back');
    // Back in charge, to delete the instances (their finalizers) in the end.
    ctfleet = startCtfleet(2);
    await ctfleet.untilReady();
  });

  test('once they are gone, a worker of the default settings hands the default bridge back', async () => {
    await removeTenants(docker, NS, ctfleet);
    await restoreDefaultIsolation();
    assert.deepEqual(await isolationProblems(docker, []), []);
    assert.ok(!chainRules(await filterTable(), 'CTFLEET-FORWARD').some((rule) => rule.startsWith('-i docker0 ')));
  });
});
