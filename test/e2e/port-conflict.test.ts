import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { containersOf, CtfleetProcess, isRunning, kubectl, manifest, prepareNamespace, webSpec, type Instances } from '../support/ctfleet.ts';
import { listen, stackConfig, uniqueSuffix } from '../support/stack.ts';

// A node whose whole port range (two ports) is held by another program: Docker
// cannot publish there, and the instance must fail with PortConflict, not hang.
// Below Linux's ephemeral range (32768-60999), so no outgoing connection of the
// stack can hold one of them when the test or Docker binds it.
const suffix = uniqueSuffix();
const NS = `e2e-ports-${suffix}`;
const RANGE = [26990, 26991];

describe('a host port already taken on the node', () => {
  const squatters: Server[] = [];
  let ctfleet: CtfleetProcess;
  let instances: Instances;

  before(async () => {
    ({ instances } = await prepareNamespace(NS));
    for (const port of RANGE) {
      const server = createServer();
      await listen(server, port, '127.0.0.1');
      squatters.push(server);
    }
    ctfleet = new CtfleetProcess(
      'all',
      {
        CTFLEET_REDIS_PREFIX: `{ctfleet-e2e-${suffix}}`,
        CTFLEET_NAMESPACES: NS,
        CTFLEET_NODE_NAME: 'e2e-ports-node',
        CTFLEET_BIND_ADDRESS: '127.0.0.1',
        CTFLEET_PORT_RANGE: `${RANGE[0]}-${RANGE[1]}`,
        CTFLEET_READINESS_TIMEOUT_SECONDS: '10',
      },
      `e2e-ports-${suffix}`,
    );
  });

  after(async () => {
    await kubectl(['delete', 'challengeinstances', '--all', '-n', NS, '--wait=true', '--timeout=60s']);
    assert.equal(await ctfleet.stop(), 0);
    for (const server of squatters) server.close();
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  test('fails the instance with PortConflict, and it runs once a port is free again', async () => {
    await kubectl(['apply', '-f', '-'], manifest(NS, 'squatted', webSpec('team-9')));
    const failed = await instances.waitFor(NS, 'squatted', 'to fail', (i) => i.status?.phase === 'Failed');
    assert.equal(failed.status?.reason, 'PortConflict');
    assert.match(failed.status.message ?? '', /host port .* is taken: .*address already in use.*no other free host ports are left/i);
    assert.deepEqual(await containersOf(createDockerClient(stackConfig().docker), NS), [], 'no half-made container is left');

    squatters.pop()?.close();
    await kubectl(['patch', 'chi', 'squatted', '-n', NS, '--type=merge', '-p', '{"spec":{"env":[{"name":"GREETING","value":"retry"}]}}']);
    const running = await instances.waitFor(NS, 'squatted', 'to run on the freed port', isRunning);
    assert.equal(running.status?.endpoints?.[0]?.port, RANGE[1]);
  });
});
