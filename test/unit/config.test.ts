import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConnectionConfig, loadRuntimeConfig } from '../../src/config/config.ts';
import { DEFAULT_HARDENING } from '../../src/domain/hardening.ts';

describe('loadConnectionConfig', () => {
  test('an empty environment gives the documented defaults', () => {
    assert.deepEqual(loadConnectionConfig({}), {
      kubeconfigPath: undefined,
      redis: { url: 'redis://127.0.0.1:6379/0', prefix: '{ctfleet}' },
      docker: { kind: 'socket', socketPath: '/var/run/docker.sock' },
    });
  });

  const valid: [string, Record<string, string>, unknown][] = [
    ['a unix DOCKER_HOST becomes a socket path', { DOCKER_HOST: 'unix:///run/user/docker.sock' }, { kind: 'socket', socketPath: '/run/user/docker.sock' }],
    ['a tcp DOCKER_HOST keeps host and port', { DOCKER_HOST: 'tcp://127.0.0.1:2375' }, { kind: 'tcp', protocol: 'http', host: '127.0.0.1', port: 2375 }],
    ['an https DOCKER_HOST defaults to port 2376', { DOCKER_HOST: 'https://127.0.0.1' }, { kind: 'tcp', protocol: 'https', host: '127.0.0.1', port: 2376 }],
  ];
  for (const [name, env, docker] of valid) {
    test(name, () => {
      assert.deepEqual(loadConnectionConfig(env).docker, docker);
    });
  }

  test('the first file of a KUBECONFIG list is used', () => {
    assert.equal(loadConnectionConfig({ KUBECONFIG: '/a/config:/b/config' }).kubeconfigPath, '/a/config');
  });

  test('every invalid variable is named with its rule, all at once', () => {
    assert.throws(
      () => loadConnectionConfig({ REDIS_URL: 'http://127.0.0.1:6379', DOCKER_HOST: 'npipe:////./pipe/docker', CTFLEET_REDIS_PREFIX: 'ctfleet' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.code, 'ConfigInvalid');
        assert.deepEqual(error.problems, [
          'REDIS_URL: must be a redis:// or rediss:// URL with a host, e.g. redis://127.0.0.1:6379/0',
          'CTFLEET_REDIS_PREFIX: must contain a {hash tag} so every key lands on one Redis Cluster slot',
          'DOCKER_HOST: must be unix:///absolute/path or tcp://host:port',
        ]);
        return true;
      },
    );
  });

  test('a prefix with a colon is refused, because BullMQ separates keys with it', () => {
    assert.throws(() => loadConnectionConfig({ CTFLEET_REDIS_PREFIX: '{ctf}:x' }), /CTFLEET_REDIS_PREFIX: may hold only/);
  });
});

describe('loadRuntimeConfig', () => {
  test('defaults give a working controller and worker configuration', () => {
    const config = loadRuntimeConfig({ CTFLEET_NODE_NAME: 'node-a' });
    assert.equal(config.worker.node, 'node-a');
    assert.deepEqual(config.worker.portRange, { min: 30000, max: 32767 });
    assert.equal(config.worker.bindAddress, '0.0.0.0');
    assert.deepEqual(config.controller.leaderElection, { namespace: 'default', name: 'ctfleet-controller' });
    assert.deepEqual(config.controller.lifetime, { maxLifetimeSeconds: 604_800, onExpiry: 'Keep' });
    assert.equal(config.controller.firstStatusGraceMs, 3_000);
  });

  test('the first status grace is whole seconds from 0 to 300', () => {
    assert.equal(loadRuntimeConfig({ CTFLEET_FIRST_STATUS_GRACE_SECONDS: '0' }).controller.firstStatusGraceMs, 0);
    assert.equal(loadRuntimeConfig({ CTFLEET_FIRST_STATUS_GRACE_SECONDS: '60' }).controller.firstStatusGraceMs, 60_000);
    for (const bad of ['-1', '301', '1.5', 'soon']) {
      assert.throws(() => loadRuntimeConfig({ CTFLEET_FIRST_STATUS_GRACE_SECONDS: bad }), (error: unknown) => {
        assert.ok(error instanceof ConfigError, bad);
        assert.deepEqual(error.problems.map((problem) => problem.split(':')[0]), ['CTFLEET_FIRST_STATUS_GRACE_SECONDS'], bad);
        return true;
      });
    }
  });

  test('every bad setting, of the connections and the components, is listed at once', () => {
    assert.throws(
      () =>
        loadRuntimeConfig({
          REDIS_URL: 'nope',
          CTFLEET_PORT_RANGE: '40000-30000',
          CTFLEET_BIND_ADDRESS: 'localhost',
          CTFLEET_ON_EXPIRY: 'Archive',
          CTFLEET_LEADER_ELECTION: 'yes',
          CTFLEET_WORKER_CONCURRENCY: '0',
          CTFLEET_NODE_NAME: 'Node_A',
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const fields = error.problems.map((problem) => problem.split(':')[0]);
        assert.deepEqual(fields.sort(), [
          'CTFLEET_BIND_ADDRESS',
          'CTFLEET_LEADER_ELECTION',
          'CTFLEET_NODE_NAME',
          'CTFLEET_ON_EXPIRY',
          'CTFLEET_PORT_RANGE',
          'CTFLEET_WORKER_CONCURRENCY',
          'REDIS_URL',
        ]);
        assert.ok(error.problems.includes('CTFLEET_PORT_RANGE: must be MIN-MAX with 1 ≤ MIN ≤ MAX ≤ 65535, e.g. 30000-32767; got "40000-30000"'));
        return true;
      },
    );
  });

  test('leader election can be turned off', () => {
    assert.equal(loadRuntimeConfig({ CTFLEET_LEADER_ELECTION: 'false' }).controller.leaderElection, undefined);
  });

  test('the platform API has a port of its own, apart from /healthz, /readyz and /metrics; each bad value is named', () => {
    const defaults = loadRuntimeConfig({});
    assert.deepEqual([defaults.api.host, defaults.api.port], ['0.0.0.0', 8081]);
    assert.deepEqual(defaults.http, { host: '0.0.0.0', port: 8080 });
    const local = loadRuntimeConfig({ CTFLEET_HTTP_HOST: '127.0.0.1', CTFLEET_API_PORT: '9000' });
    assert.deepEqual([local.api.host, local.api.port], ['127.0.0.1', 9000], 'the API host follows CTFLEET_HTTP_HOST unless set');
    assert.equal(loadRuntimeConfig({ CTFLEET_HTTP_HOST: '127.0.0.1', CTFLEET_API_HOST: '0.0.0.0' }).api.host, '0.0.0.0');
    assert.equal(loadRuntimeConfig({ CTFLEET_HTTP_PORT: '8081' }).http.port, 8081, 'a process that serves no API may use any health port');
    const problems = (env: Record<string, string>): string[] => {
      try {
        loadRuntimeConfig(env);
        return [];
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return [...error.problems];
      }
    };
    assert.deepEqual(problems({ CTFLEET_API_PORT: '70000' }), ['CTFLEET_API_PORT: must be a port number (0 picks a free one)']);
    assert.deepEqual(problems({ CTFLEET_API_PORT: 'http' }).map((problem) => problem.split(':')[0]), ['CTFLEET_API_PORT']);
    assert.deepEqual(problems({ CTFLEET_API_TOKENS_FILE: '/tokens', CTFLEET_HTTP_PORT: '9000', CTFLEET_API_PORT: '9000' }), [
      'CTFLEET_API_PORT: must differ from CTFLEET_HTTP_PORT (9000), where /healthz, /readyz and /metrics are served',
    ]);
    assert.deepEqual(problems({ CTFLEET_API_TOKENS_FILE: '/tokens', CTFLEET_HTTP_PORT: '0', CTFLEET_API_PORT: '0' }), [], 'two free ports');
  });

  test('CTFLEET_FLAG_KEY_SECRET names the flag key Secret as namespace/name; unset is allowed; a bad value is named with the others', () => {
    assert.deepEqual(loadRuntimeConfig({}).flags, { keySecret: undefined });
    assert.deepEqual(loadRuntimeConfig({ CTFLEET_FLAG_KEY_SECRET: 'ctfleet-system/ctfleet-flag-key' }).flags, { keySecret: { namespace: 'ctfleet-system', name: 'ctfleet-flag-key' } });
    for (const bad of ['ctfleet-flag-key', 'a/b/c', 'Ctfleet/key', 'ns/', '/key', '', `${'n'.repeat(64)}/key`]) {
      assert.throws(
        () => loadRuntimeConfig({ CTFLEET_FLAG_KEY_SECRET: bad, CTFLEET_ON_EXPIRY: 'Archive' }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.deepEqual(error.problems.map((problem) => problem.split(':')[0]).sort(), ['CTFLEET_FLAG_KEY_SECRET', 'CTFLEET_ON_EXPIRY'], JSON.stringify(bad));
          assert.ok(error.problems.includes('CTFLEET_FLAG_KEY_SECRET: must be namespace/name of a Secret with a key "key" of at least 32 bytes, e.g. ctfleet-system/ctfleet-flag-key'));
          return true;
        },
      );
    }
  });

  test('reliability settings: defaults, namespaces list, and each bad value named', () => {
    const defaults = loadRuntimeConfig({});
    assert.deepEqual(defaults.jobs, { attempts: 5, backoffMs: 1_000 });
    assert.deepEqual(defaults.controller.nodeLost, { lostAfterMs: 30_000, onNodeLost: 'Reschedule' });
    assert.deepEqual(defaults.worker.restart, { limit: 5, windowMs: 600_000, backoffMs: 1_000 });
    assert.equal(defaults.worker.sweepIntervalMs, 30_000);
    assert.equal(defaults.shutdownTimeoutMs, 20_000);
    assert.deepEqual(defaults.http, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(defaults.namespaces, []);
    assert.deepEqual(loadRuntimeConfig({ CTFLEET_NAMESPACES: 'ctf, ctf-finals,' }).namespaces, ['ctf', 'ctf-finals']);
    assert.throws(
      () => loadRuntimeConfig({ CTFLEET_NAMESPACES: 'ctf,Bad_NS', CTFLEET_JOB_ATTEMPTS: '0', CTFLEET_ON_NODE_LOST: 'Ignore', CTFLEET_RESTART_LIMIT: '-1', CTFLEET_HTTP_PORT: '70000' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const fields = error.problems.map((problem) => problem.split(':')[0]);
        assert.deepEqual(fields.sort(), ['CTFLEET_HTTP_PORT', 'CTFLEET_JOB_ATTEMPTS', 'CTFLEET_NAMESPACES.1', 'CTFLEET_ON_NODE_LOST', 'CTFLEET_RESTART_LIMIT']);
        assert.ok(error.problems.some((problem) => problem.startsWith('CTFLEET_NAMESPACES.1: must list namespace names')));
        return true;
      },
    );
  });

  test('every container is hardened by default, and each hardening setting is checked', () => {
    assert.deepEqual(loadRuntimeConfig({}).worker.hardening, DEFAULT_HARDENING);
    // NET_RAW kept by every container spoofs on the shared bridge: only with the unsafe override.
    assert.throws(() => loadRuntimeConfig({ CTFLEET_CAPABILITIES: 'CHOWN,NET_RAW' }), /CTFLEET_CAPABILITIES: NET_RAW would let every team break out of its instance's isolation .*CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES=true/);
    const loosened = loadRuntimeConfig({ CTFLEET_CAPABILITIES: 'chown, CAP_NET_RAW,CHOWN', CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES: 'true', CTFLEET_MAX_MEMORY: '8Gi', CTFLEET_LOG_MAX_SIZE: '10m' }).worker.hardening;
    assert.deepEqual(loosened.capabilities, ['CHOWN', 'NET_RAW']);
    assert.equal(loosened.maxima.memory, '8Gi');
    assert.equal(loosened.log.maxSize, '10m');
    assert.throws(
      () => loadRuntimeConfig({ CTFLEET_CAPABILITIES: 'CHOWN,ROOT', CTFLEET_MAX_CPU: 'lots', CTFLEET_LOG_MAX_SIZE: '1 MB', CTFLEET_MAX_PIDS: '4' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const fields = error.problems.map((problem) => problem.split(':')[0]);
        assert.deepEqual(fields.sort(), ['CTFLEET_CAPABILITIES.1', 'CTFLEET_LOG_MAX_SIZE', 'CTFLEET_MAX_CPU', 'CTFLEET_MAX_PIDS']);
        assert.ok(error.problems.includes('CTFLEET_MAX_CPU: must be a positive Kubernetes quantity, e.g. 500m or 2'));
        return true;
      },
    );
    assert.deepEqual(loadRuntimeConfig({}).worker.allowedImages, [], 'no image is allowed until the deployment names some');
    assert.deepEqual(loadRuntimeConfig({ CTFLEET_ALLOWED_IMAGES: 'registry.example/ctf/*, ctfleet-test/web:1,' }).worker.allowedImages, ['registry.example/ctf/*', 'ctfleet-test/web:1']);
    assert.throws(() => loadRuntimeConfig({ CTFLEET_DEFAULT_MEMORY: '4Gi' }), /CTFLEET_DEFAULT_MEMORY: must not exceed CTFLEET_MAX_MEMORY \(2Gi\); got 4Gi/);
  });

  test('a spec may add no capability and name no runtime until the deployment allows some, and the root stays writable by default', () => {
    const { allowedExtraCapabilities, allowedRuntimes, readOnlyRootFilesystem, maxTmpfsSize } = loadRuntimeConfig({}).worker.hardening;
    assert.deepEqual({ allowedExtraCapabilities, allowedRuntimes, readOnlyRootFilesystem, maxTmpfsSize }, { allowedExtraCapabilities: [], allowedRuntimes: [], readOnlyRootFilesystem: false, maxTmpfsSize: '256Mi' });
    const loosened = loadRuntimeConfig({
      CTFLEET_ALLOWED_EXTRA_CAPABILITIES: 'sys_nice, CAP_SYS_NICE,NET_BROADCAST',
      CTFLEET_ALLOWED_RUNTIMES: 'runsc, kata-runtime,',
      CTFLEET_READ_ONLY_ROOT_FILESYSTEM: 'true',
      CTFLEET_MAX_TMPFS_SIZE: '1Gi',
    }).worker.hardening;
    assert.deepEqual(loosened.allowedExtraCapabilities, ['SYS_NICE', 'NET_BROADCAST']);
    assert.deepEqual(loosened.allowedRuntimes, ['runsc', 'kata-runtime']);
    assert.equal(loosened.readOnlyRootFilesystem, true);
    assert.equal(loosened.maxTmpfsSize, '1Gi');
  });

  const dangerous = ['NET_RAW', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_MODULE', 'SYS_PTRACE', 'SYS_RAWIO', 'SYS_BOOT', 'MAC_ADMIN', 'MAC_OVERRIDE', 'BPF', 'PERFMON', 'DAC_READ_SEARCH', 'MKNOD'];
  for (const capability of dangerous) {
    test(`${capability} on the extra-capability list stops start-up, naming the variable and the override`, () => {
      assert.throws(
        () => loadRuntimeConfig({ CTFLEET_ALLOWED_EXTRA_CAPABILITIES: `SYS_NICE,${capability.toLowerCase()}` }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.deepEqual(error.problems, [
            `CTFLEET_ALLOWED_EXTRA_CAPABILITIES: ${capability} would let a team break out of its instance's isolation (docs/security.md); refused unless CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES=true`,
          ]);
          return true;
        },
      );
    });
  }

  test('the unsafe override lets the deployment allow them', () => {
    const hardening = loadRuntimeConfig({ CTFLEET_ALLOWED_EXTRA_CAPABILITIES: 'NET_ADMIN,NET_RAW', CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES: 'true' }).worker.hardening;
    assert.deepEqual(hardening.allowedExtraCapabilities, ['NET_ADMIN', 'NET_RAW']);
  });

  test('bad security settings are reported with every other problem, each naming its variable', () => {
    assert.throws(
      () => loadRuntimeConfig({
        CTFLEET_ALLOWED_EXTRA_CAPABILITIES: 'NET_ADMIN,ROOT',
        CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES: 'yes',
        CTFLEET_ALLOWED_RUNTIMES: 'runsc,../bin/sh',
        CTFLEET_READ_ONLY_ROOT_FILESYSTEM: 'on',
        CTFLEET_MAX_TMPFS_SIZE: '0',
        CTFLEET_MAX_CPU: 'lots',
      }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const fields = error.problems.map((problem) => problem.split(':')[0]);
        assert.deepEqual(fields.sort(), [
          'CTFLEET_ALLOWED_EXTRA_CAPABILITIES',
          'CTFLEET_ALLOWED_EXTRA_CAPABILITIES.1',
          'CTFLEET_ALLOWED_RUNTIMES.1',
          'CTFLEET_MAX_CPU',
          'CTFLEET_MAX_TMPFS_SIZE',
          'CTFLEET_READ_ONLY_ROOT_FILESYSTEM',
          'CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES',
        ]);
        return true;
      },
    );
  });

  test('instances are isolated by default, and each isolation setting is checked, naming its variable', () => {
    assert.deepEqual(loadRuntimeConfig({}).worker.isolation, {
      range: '10.213.0.0/16',
      blockedRanges: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'],
      clusterRanges: [],
      dnsServers: [],
      defaultEgress: 'None',
      firewall: true,
      noneNetwork: 'ctfleet',
    });
    assert.equal(loadRuntimeConfig({ CTFLEET_NONE_NETWORK: 'engine-default' }).worker.isolation.noneNetwork, 'engine-default');
    assert.throws(() => loadRuntimeConfig({ CTFLEET_NONE_NETWORK: 'docker0' }), /CTFLEET_NONE_NETWORK: must be ctfleet \(a bridge the worker makes\) or engine-default/);
    assert.throws(() => loadRuntimeConfig({ CTFLEET_NONE_NETWORK: 'engine-default', CTFLEET_FIREWALL: 'off' }), /CTFLEET_NONE_NETWORK: engine-default needs CTFLEET_FIREWALL=on/);
    const loosened = loadRuntimeConfig({
      CTFLEET_NETWORK_RANGE: '10.90.0.0/20',
      CTFLEET_BLOCKED_RANGES: '',
      CTFLEET_CLUSTER_RANGES: '10.244.0.0/16, 10.96.0.0/12',
      CTFLEET_DNS_SERVERS: '10.0.0.2',
      CTFLEET_DEFAULT_EGRESS: 'Internet',
      CTFLEET_FIREWALL: 'off',
    }).worker.isolation;
    assert.deepEqual(loosened, { range: '10.90.0.0/20', blockedRanges: [], clusterRanges: ['10.244.0.0/16', '10.96.0.0/12'], dnsServers: ['10.0.0.2'], defaultEgress: 'Internet', firewall: false, noneNetwork: 'ctfleet' });
    assert.throws(
      () =>
        loadRuntimeConfig({
          CTFLEET_NETWORK_RANGE: '10.213.0.1/16',
          CTFLEET_BLOCKED_RANGES: '10.0.0.0/8,192.168.1.1/16',
          CTFLEET_CLUSTER_RANGES: 'pods',
          CTFLEET_DNS_SERVERS: '10.0.0.2/32',
          CTFLEET_DEFAULT_EGRESS: 'internet',
          CTFLEET_FIREWALL: 'false',
        }),
      (error: unknown) => {
        const { message } = error as Error;
        for (const name of ['CTFLEET_NETWORK_RANGE', 'CTFLEET_BLOCKED_RANGES.1', 'CTFLEET_CLUSTER_RANGES.0', 'CTFLEET_DNS_SERVERS.0', 'CTFLEET_DEFAULT_EGRESS', 'CTFLEET_FIREWALL']) {
          assert.match(message, new RegExp(`${name.replace('.', '\\.')}: `), `${name} is named`);
        }
        return true;
      },
    );
    assert.throws(() => loadRuntimeConfig({ CTFLEET_NETWORK_RANGE: '10.0.0.0/28' }), /CTFLEET_NETWORK_RANGE: must be an IPv4 range from \/8 to \/24/);
  });
});
