import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Queue, QueueEvents, Worker } from 'bullmq';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { createDockerClient } from '../../src/adapters/docker/docker-client.ts';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import { createRedisConnection } from '../../src/adapters/redis/redis-connection.ts';
import type { ConnectionConfig } from '../../src/config/config.ts';
import { eventually, stackConfig, uniqueSuffix } from '../support/stack.ts';

describe('the local stack', () => {
  let config: ConnectionConfig;
  let kubeConfig: KubeConfig;

  before(() => {
    config = stackConfig();
    kubeConfig = loadKubeConfig(config.kubeconfigPath);
  });

  test('the tools that `hack/stack.sh env` puts first on PATH reach the stack at the pinned versions', () => {
    const pinned = Object.fromEntries(
      readFileSync(new URL('../../hack/versions.env', import.meta.url), 'utf8')
        .split('\n')
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => line.split('=') as [string, string]),
    );
    const run = (command: string, args: string[]): string => execFileSync(command, args, { encoding: 'utf8' }).trim();
    const version = JSON.parse(run('kubectl', ['version', '-o', 'json'])) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    assert.equal(version.serverVersion.gitVersion, pinned.KUBE_VERSION);
    assert.equal(version.clientVersion.gitVersion, pinned.KUBE_VERSION, 'kubectl matches the server');
    assert.match(run('kubectl', ['get', 'ns', 'default', '-o', 'name']), /^namespace\/default$/);
    assert.equal(run('redis-cli', ['-u', process.env.REDIS_URL ?? '', 'ping']), 'PONG');
    assert.match(run('docker', ['info', '--format', '{{.ServerVersion}}']), /^\d+\.\d+/);
    assert.match(run('helm', ['version', '--short']), new RegExp(`^${pinned.HELM_VERSION ?? 'missing'}`));
    assert.equal(run('node', ['-p', 'process.versions.node.split(".")[0]']), (pinned.NODE_VERSION ?? '').split('.')[0]);
  });

  test('the Kubernetes API server creates a namespace and reads it back', async () => {
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const name = `ctfleet-it-${uniqueSuffix()}`;
    await core.createNamespace({ body: { metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'ctfleet-tests' } } } });
    try {
      const read = await core.readNamespace({ name });
      const metadata = read.metadata;
      assert.ok(metadata);
      assert.equal(metadata.name, name);
      assert.equal(metadata.labels?.['app.kubernetes.io/managed-by'], 'ctfleet-tests');
      assert.ok(metadata.uid, 'the API server assigned a uid');
      assert.equal(read.status?.phase, 'Active');
    } finally {
      await core.deleteNamespace({ name });
    }
    // The stack's kube-controller-manager runs the namespace controller, so a
    // deleted namespace really goes away instead of staying Terminating.
    await eventually('namespace deletion', 30_000, async () => {
      try {
        await core.readNamespace({ name });
        return undefined;
      } catch (error) {
        return (error as { code?: number }).code === 404 ? true : undefined;
      }
    });
  });

  describe('Redis', () => {
    let producer: Redis;
    let blocking: Redis;
    const prefix = `{ctfleet-it-${uniqueSuffix()}}`;

    before(() => {
      producer = createRedisConnection(config.redis, 'command');
      blocking = createRedisConnection(config.redis, 'blocking');
    });

    after(async () => {
      const keys = await producer.keys(`${prefix}:*`);
      if (keys.length > 0) await producer.del(...keys);
      producer.disconnect();
      blocking.disconnect();
    });

    test('a BullMQ job makes a round trip through the stack Redis', async () => {
      // BullMQ never closes a connection it was handed, so the test closes its own.
      const eventsConnection = blocking.duplicate();
      const workerConnection = blocking.duplicate();
      const queue = new Queue('round-trip', { connection: producer, prefix });
      const events = new QueueEvents('round-trip', { connection: eventsConnection, prefix });
      const worker = new Worker(
        'round-trip',
        async (job) => {
          await job.updateProgress(50);
          return { echoed: (job.data as { team: string }).team, attempt: job.attemptsMade + 1 };
        },
        { connection: workerConnection, prefix },
      );
      try {
        await events.waitUntilReady();
        const job = await queue.add('start', { team: 'team-7' }, { jobId: 'team-7-start' });
        const result: unknown = await job.waitUntilFinished(events, 10_000);
        assert.deepEqual(result, { echoed: 'team-7', attempt: 1 });
        assert.equal(await queue.getJobState('team-7-start'), 'completed');
        const stored = await queue.getJob('team-7-start');
        assert.equal(stored?.progress, 50);
        assert.ok((await producer.exists(`${prefix}:round-trip:team-7-start`)) === 1, 'the job hash lives under the hash-tagged prefix');
      } finally {
        await worker.close();
        await events.close();
        await queue.close();
        eventsConnection.disconnect();
        workerConnection.disconnect();
      }
    });
  });

  describe('Docker', () => {
    let docker: Docker;
    const name = `ctfleet-it-web-${uniqueSuffix()}`;

    before(() => {
      docker = createDockerClient(config.docker);
    });

    after(async () => {
      await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
    });

    test('dockerode runs the web test image on a mapped 127.0.0.1 port and the page is served', async () => {
      const greeting = `hello-${uniqueSuffix()}`;
      const container = await docker.createContainer({
        name,
        Image: 'ctfleet-test/web:1',
        Env: [`GREETING=${greeting}`],
        ExposedPorts: { '8080/tcp': {} },
        HostConfig: {
          PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
          Memory: 64 * 1024 * 1024,
          NanoCpus: 250_000_000,
          PidsLimit: 32,
        },
        Labels: { 'app.kubernetes.io/managed-by': 'ctfleet-tests' },
      });
      await container.start();
      const inspected = await container.inspect();
      // The typings promise every port a binding list; an unpublished port has none.
      const bindings: { HostIp: string; HostPort: string }[] | undefined = inspected.NetworkSettings.Ports['8080/tcp'];
      const binding = bindings?.[0];
      assert.equal(binding?.HostIp, '127.0.0.1');
      const port = Number(binding.HostPort);
      assert.ok(port > 0, 'Docker assigned a host port');
      assert.equal(inspected.HostConfig.Memory, 64 * 1024 * 1024);
      assert.equal(inspected.HostConfig.PidsLimit, 32);

      const page = await eventually('the web page', 10_000, async () => {
        const response = await fetch(`http://127.0.0.1:${port}/`);
        return response.ok ? response.text() : undefined;
      });
      assert.match(page, new RegExp(`<p id="greeting">${greeting}</p>`));
    });
  });
});
