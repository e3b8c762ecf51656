import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { containersOf, CtfleetProcess, fetchText, kubectl, prepareNamespace, webSpec, type Instances } from '../support/ctfleet.ts';
import { chainRules, filterTable, isolationProblems, NETWORKS, reachesFrom, removeTenants, shell, Tenants, startNodeService, type NodeService } from '../support/isolation.ts';
import { logProblems } from '../support/logs.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

// A hostile tenant: team A has a root shell in its instance (`docker exec`, as a
// player would) and tries everything it should not reach. Traffic goes only to
// this machine's own containers and the bridge gateways the stack and ctfleet
// made; what lies beyond (metadata, private ranges) is checked by reading the
// firewall rules, never by sending packets there.

const run = promisify(execFile);
const suffix = uniqueSuffix();
const NS = `e2e-iso-${suffix}`;
const PREFIX = `{ctfleet-e2e-iso-${suffix}}`;
const OTHER_NETWORK = `e2e-other-${suffix}`;
const OTHER_CONTAINER = `e2e-other-web-${suffix}`;

describe('a hostile tenant reaches its own container and nothing else', () => {
  let docker: Docker;
  let instances: Instances;
  let ctfleet: CtfleetProcess;
  let nodeService: NodeService;
  const tenants = new Tenants();

  const gateways = (): string[] => [...Object.values(NETWORKS).map((network) => network.subnet.replace(/\.0\/\d+$/, '.1')), '172.17.0.1'];

  before(async () => {
    docker = createDockerClient(stackConfig().docker);
    ({ instances } = await prepareNamespace(NS));
    nodeService = await startNodeService();
    // Another network made on this machine, with a container of nobody's.
    await docker.createNetwork({ Name: OTHER_NETWORK, Driver: 'bridge' });
    const other = await docker.createContainer({ name: OTHER_CONTAINER, Image: 'ctfleet-test/web:1', Env: ['GREETING=other'], HostConfig: { NetworkMode: OTHER_NETWORK } });
    await other.start();
    const otherNetwork = (await other.inspect()).NetworkSettings.Networks[OTHER_NETWORK];
    tenants.address.set('other', otherNetwork?.IPAddress ?? '');
    tenants.address.set('other-gateway', otherNetwork?.Gateway ?? '');

    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: PREFIX,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-iso-node',
        CTFLEET_LEADER_ELECTION: 'false',
        // Published on every address of the node, so a path through a gateway would exist.
        CTFLEET_BIND_ADDRESS: '0.0.0.0',
        CTFLEET_ADVERTISE_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: '25000-25099',
        CTFLEET_SWEEP_INTERVAL_SECONDS: '2',
        CTFLEET_LOG_LEVEL: 'debug',
      },
      `e2e-isolation-${suffix}`,
    );
    const specs: Record<string, Record<string, unknown>> = {
      a: webSpec('team-a', { network: { egress: 'Internet' } }),
      b: webSpec('team-b'), // the deployment's default egress: None
      c: webSpec('team-c', { network: { egress: 'Internet' } }), // on A's bridge
      bomb: webSpec('team-d'),
      flood: webSpec('team-e'),
      // Serves, then holds 100 MiB against its 16Mi limit once the player says so.
      hog: webSpec('team-f', {
        image: 'ctfleet-test/busybox:1',
        command: ['sh', '-c', "httpd -p 8080 -h /tmp; while [ ! -e /tmp/hog ]; do sleep 0.2; done; x=$(head -c 100m /dev/zero | tr '\\0' a)"],
        resources: { cpu: '250m', memory: '16Mi', pids: 64 },
      }),
    };
    await tenants.run(docker, instances, NS, specs);
  });

  after(async () => {
    await removeTenants(docker, NS, ctfleet);
    await docker.getContainer(OTHER_CONTAINER).remove({ force: true }).catch(() => undefined);
    await docker.getNetwork(OTHER_NETWORK).remove().catch(() => undefined);
    await nodeService.close();
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('each instance joins the instance network of its egress, with inter-container traffic off', async () => {
    const expected: Record<string, string> = { a: NETWORKS.Internet.name, b: NETWORKS.None.name, c: NETWORKS.Internet.name };
    for (const [name, network] of Object.entries(expected)) {
      const inspected = await docker.getContainer(tenants.containerOf(name)).inspect();
      assert.deepEqual(Object.keys(inspected.NetworkSettings.Networks), [network], `${name} is on ${network} only`);
    }
    for (const network of Object.values(NETWORKS)) {
      const inspected = (await docker.getNetwork(network.name).inspect()) as { Options: Record<string, string>; IPAM: { Config: { Subnet: string }[] } };
      assert.equal(inspected.Options['com.docker.network.bridge.enable_icc'], 'false');
      assert.equal(inspected.IPAM.Config[0]?.Subnet, network.subnet);
    }
  });

  test("A's own server answers inside A and its endpoint answers from the host", async () => {
    assert.equal(await reachesFrom(tenants.containerOf('a'), '127.0.0.1', 8080), true, 'wget works inside the container (the control for every refusal below)');
    assert.match(await fetchText(tenants.running.get('a')?.status?.endpoints?.[0]?.url ?? ''), /hello team-a/);
  });

  test("from A's shell: B (None bridge) and C (A's own bridge) are unreachable on their addresses and on every gateway's published port", async () => {
    const a = tenants.containerOf('a');
    for (const victim of ['b', 'c']) {
      assert.match(await fetchText(`http://${tenants.address.get(victim) ?? ''}:8080/`), new RegExp(`hello team-${victim}`), `${victim} answers the host on its address`);
      assert.equal(await reachesFrom(a, tenants.address.get(victim) ?? '', 8080), false, `A reached ${victim} at ${tenants.address.get(victim) ?? ''}`);
      for (const gateway of gateways()) {
        const url = `http://${gateway}:${tenants.hostPortOf(victim)}/`;
        // The control: the host itself reaches the published port on that address.
        assert.match(await fetchText(url), new RegExp(`hello team-${victim}`), `${url} answers the host`);
        assert.equal(await reachesFrom(a, gateway, tenants.hostPortOf(victim)), false, `A reached ${victim} through ${url}`);
      }
    }
  });

  test("a server on all the node's addresses is unreachable through any gateway, from either egress", async () => {
    // The control: a container outside ctfleet's networks reaches it through its gateway with the same probe.
    assert.equal(await reachesFrom(OTHER_CONTAINER, tenants.address.get('other-gateway') ?? '', nodeService.port), true, 'the probe works where no rule forbids it');
    for (const gateway of gateways()) {
      const url = `http://${gateway}:${nodeService.port}/`;
      assert.equal(await fetchText(url), 'node service', `${url} answers the host`);
      for (const tenant of ['a', 'b']) assert.equal(await reachesFrom(tenants.containerOf(tenant), gateway, nodeService.port), false, `${tenant} reached the node at ${url}`);
    }
  });

  test("egress None: B opens no connection to A, the node, or another network's container, while its endpoint answers", async () => {
    const b = tenants.containerOf('b');
    assert.equal(await reachesFrom(b, tenants.address.get('a') ?? '', 8080), false, 'B reached A');
    assert.equal(await reachesFrom(b, '172.17.0.1', nodeService.port), false, 'B reached the node');
    assert.equal(await reachesFrom(b, tenants.address.get('other') ?? '', 8080), false, "B reached the other network's container");
    // Internet egress does not reach it either: another Docker network is not the Internet.
    assert.equal(await reachesFrom(tenants.containerOf('a'), tenants.address.get('other') ?? '', 8080), false, "A reached the other network's container");
    // The control: the other container answers on that address (from the host).
    assert.match(await fetchText(`http://${tenants.address.get('other') ?? ''}:8080/`), /other/);
    assert.match(await fetchText(tenants.running.get('b')?.status?.endpoints?.[0]?.url ?? ''), /hello team-b/);
  });

  test("A's capabilities lack NET_RAW, NoNewPrivs is 1 and IPv6 is off inside", async () => {
    const status = (await shell(tenants.containerOf('a'), 'cat /proc/1/status')).output;
    const bounding = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(status)?.[1] ?? assert.fail(status)}`);
    assert.equal((bounding >> 13n) & 1n, 0n, 'NET_RAW (bit 13) is not in the bounding set');
    assert.match(status, /NoNewPrivs:\s*1/);
    assert.equal((await shell(tenants.containerOf('a'), 'cat /proc/sys/net/ipv6/conf/all/disable_ipv6')).output.trim(), '1');
  });

  test('the firewall rules cover what no test may send packets to: metadata, private ranges, the node', async () => {
    const table = await filterTable();
    const forward = chainRules(table, 'CTFLEET-FORWARD');
    for (const range of ['169.254.0.0/16', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10']) {
      const drop = forward.indexOf(`-d ${range} -i ctfl-+ -j DROP`);
      assert.ok(drop > 0, `forwarded traffic from instances to ${range} is dropped`);
      assert.ok(forward.slice(0, drop).every((rule) => !rule.includes('ACCEPT')), `nothing accepts before the drop of ${range}`);
    }
    assert.deepEqual(chainRules(table, 'CTFLEET-INPUT'), ['-i ctfl-+ -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN', '-i ctfl-+ -j DROP'], 'the node: only replies');
    assert.equal(chainRules(table, 'FORWARD')[0], '-j DOCKER-USER', 'forwarded traffic sees DOCKER-USER first');
    assert.ok(chainRules(table, 'DOCKER-USER').includes('-j CTFLEET-FORWARD'));
    assert.ok(chainRules(table, 'INPUT').includes('-j CTFLEET-INPUT'));
  });

  test('a fork bomb in one instance leaves the others and the node answering', async () => {
    const bomb = tenants.containerOf('bomb');
    // Forks until the kernel refuses, and keeps trying.
    await run('docker', ['exec', '-d', bomb, 'sh', '-c', 'while :; do sleep 1000 & done']);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const pids = Number((await run('docker', ['stats', '--no-stream', '--format', '{{.PIDs}}', bomb])).stdout.trim());
    assert.ok(pids > 10 && pids <= 64, `the bomb is held at its pids limit (64): ${pids}`);
    assert.match(await fetchText(tenants.running.get('a')?.status?.endpoints?.[0]?.url ?? ''), /hello team-a/);
    assert.equal(await fetchText(`http://127.0.0.1:${nodeService.port}/`), 'node service');
    assert.equal((await shell(tenants.containerOf('c'), 'echo alive')).output.trim(), 'alive');
  });

  test('a memory hog ends OOM-killed at its limit, with the reason in its status, while the others answer', async () => {
    const hog = tenants.containerOf('hog');
    assert.equal((await shell(hog, 'touch /tmp/hog')).code, 0);
    const killed = await instances.waitFor(NS, 'hog', 'to report the OOM kill', (found) => /killed by the OOM killer at its memory limit of 16Mi/.test(found.status?.conditions?.find((condition) => condition.type === 'Ready')?.message ?? ''), 30_000);
    assert.equal(killed.status?.conditions?.find((condition) => condition.type === 'Ready')?.reason, 'ContainerRestarting');
    assert.match(await fetchText(tenants.running.get('a')?.status?.endpoints?.[0]?.url ?? ''), /hello team-a/);
  });

  test('a log flood stays within the rotation limit (1m × 3 files)', async () => {
    const flood = tenants.containerOf('flood');
    // 20 MB on the container's stdout, in 1 KB lines.
    const result = await shell(flood, 'head -c 20000000 /dev/zero | tr "\\0" x | fold -w 1000 > /proc/1/fd/1', 120_000);
    assert.equal(result.code, 0, result.output);
    const logPath = (await docker.getContainer(flood).inspect()).LogPath;
    const files = readdirSync(dirname(logPath)).filter((file) => file.startsWith(basename(logPath)));
    const bytes = files.reduce((total, file) => total + statSync(join(dirname(logPath), file)).size, 0);
    assert.ok(files.length >= 2 && files.length <= 3, `rotated into at most 3 files: ${files.join(', ')}`);
    assert.ok(bytes <= 3.2 * 1024 * 1024, `the logs hold ${bytes} bytes, within 3 MiB (plus one line of slack)`);
  });

  test('rules flushed, a jump deleted, a jump doubled, an old network left: the sweep puts it all right', async () => {
    await run('iptables', ['-w', '-F', 'CTFLEET-FORWARD']);
    await run('iptables', ['-w', '-D', 'INPUT', '-j', 'CTFLEET-INPUT']);
    await run('iptables', ['-w', '-I', 'DOCKER-USER', '1', '-j', 'CTFLEET-FORWARD']); // a second jump
    await docker.createNetwork({ Name: 'ctfleet-internet-0ld0ld00', Driver: 'bridge', IPAM: { Driver: 'default', Config: [{ Subnet: '10.212.0.0/24' }] }, Labels: { 'app.kubernetes.io/managed-by': 'ctfleet' } });
    await eventually('the sweep to repair the node', 20_000, async () => ((await isolationProblems(docker, [])).length === 0 ? true : undefined));
    // The worker saw each piece of damage (the sweep may have been quicker than any look of ours).
    // Its log reaches the file through a pipe: the last line may land just after the repair shows.
    const repairs = ['Firewall rules were changed or missing; restored them', 'The jump from INPUT to CTFLEET-INPUT was missing', 'Removed a surplus jump from DOCKER-USER to CTFLEET-FORWARD', 'Removed unused network ctfleet-internet-0ld0ld00'];
    const log = await eventually('the worker to log every repair', 5_000, () => {
      const text = readFileSync(ctfleet.logFile, 'utf8');
      return Promise.resolve(repairs.every((repair) => text.includes(repair)) ? text : undefined);
    }).catch(() => readFileSync(ctfleet.logFile, 'utf8'));
    for (const repair of repairs) assert.ok(log.includes(repair), `the worker logged: ${repair}`);
    // Repaired, instances still isolated: the probe from A to C fails again.
    assert.equal(await reachesFrom(tenants.containerOf('a'), tenants.address.get('c') ?? '', 8080), false);
  });

  test('after every instance is deleted nothing is left: no container, no network but the two, the rules whole', async () => {
    const deleted = await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await containersOf(docker, NS), []);
    assert.deepEqual(await isolationProblems(docker, []), []);
  });

  test('the log is clean', async () => {
    await ctfleet.stop();
    const { lines, problems } = logProblems(ctfleet.logFile);
    assert.ok(lines > 0);
    assert.deepEqual(problems, []);
  });
});
