import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { InstanceSpec, SecuritySpec } from '../../src/domain/challenge-instance.ts';
import { CtfleetError } from '../../src/domain/errors.ts';
import { DEFAULT_CAPABILITIES, DEFAULT_HARDENING, type HardeningProfile } from '../../src/domain/hardening.ts';
import { securityOf, type SecurityShape } from '../../src/worker/container-shape.ts';

const spec = (security?: SecuritySpec): InstanceSpec => ({
  team: 'team-7',
  challenge: 'web-101',
  image: 'ctfleet-test/web:1',
  imagePullPolicy: 'IfNotPresent',
  ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
  desiredState: 'Running',
  priority: 0,
  ...(security === undefined ? {} : { security }),
});

/** A deployment that allows two extra capabilities, gVisor, and 128Mi of tmpfs. */
const LOOSENED: HardeningProfile = { ...DEFAULT_HARDENING, allowedExtraCapabilities: ['SYS_NICE', 'NET_BROADCAST'], allowedRuntimes: ['runsc'], maxTmpfsSize: '128Mi' };
const FORCED: HardeningProfile = { ...LOOSENED, readOnlyRootFilesystem: true };
const MiB = 2 ** 20;
const DEFAULTS = [...DEFAULT_CAPABILITIES];

describe('securityOf: what a spec may ask for within the deployment', () => {
  const allowed: [string, HardeningProfile, SecuritySpec | undefined, SecurityShape][] = [
    ['a spec without security gets the kept set, a writable root, no tmpfs and the default runtime', DEFAULT_HARDENING, undefined, { capabilities: DEFAULTS, readOnlyRootFilesystem: false, tmpfs: [] }],
    ['an allowed extra capability is added to the kept set', LOOSENED, { capabilities: { add: ['SYS_NICE'] } }, { capabilities: [...DEFAULTS, 'SYS_NICE'], readOnlyRootFilesystem: false, tmpfs: [] }],
    ['a capability already kept needs no allowance', DEFAULT_HARDENING, { capabilities: { add: ['CHOWN', 'KILL'] } }, { capabilities: DEFAULTS, readOnlyRootFilesystem: false, tmpfs: [] }],
    [
      'a read-only root with sized tmpfs mounts',
      LOOSENED,
      { readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', size: '64Mi' }, { path: '/var/run/app-1.d', size: '1Mi' }] },
      { capabilities: DEFAULTS, readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', sizeBytes: 64 * MiB }, { path: '/var/run/app-1.d', sizeBytes: MiB }] },
    ],
    ['tmpfs adding up to exactly the maximum', LOOSENED, { tmpfs: [{ path: '/tmp', size: '64Mi' }, { path: '/run', size: '64Mi' }] }, { capabilities: DEFAULTS, readOnlyRootFilesystem: false, tmpfs: [{ path: '/tmp', sizeBytes: 64 * MiB }, { path: '/run', sizeBytes: 64 * MiB }] }],
    ['an allowed runtime', LOOSENED, { runtime: 'runsc' }, { capabilities: DEFAULTS, readOnlyRootFilesystem: false, tmpfs: [], runtime: 'runsc' }],
    ['a deployment that forces a read-only root overrides a spec asking for a writable one', FORCED, { readOnlyRootFilesystem: false }, { capabilities: DEFAULTS, readOnlyRootFilesystem: true, tmpfs: [] }],
    ['a forced read-only root applies to a spec without security', FORCED, undefined, { capabilities: DEFAULTS, readOnlyRootFilesystem: true, tmpfs: [] }],
  ];
  for (const [name, profile, security, expected] of allowed) {
    test(name, () => {
      assert.deepEqual(securityOf(spec(security), profile), expected);
    });
  }

  const refused: [string, HardeningProfile, SecuritySpec, string][] = [
    [
      'a capability not on the allow-list, naming the field and the list',
      LOOSENED,
      { capabilities: { add: ['SYS_NICE', 'SYS_ADMIN'] } },
      "spec.security.capabilities.add: SYS_ADMIN is not on this deployment's list of capabilities a spec may add (CTFLEET_ALLOWED_EXTRA_CAPABILITIES: SYS_NICE, NET_BROADCAST)",
    ],
    [
      'any extra capability while the allow-list is empty',
      DEFAULT_HARDENING,
      { capabilities: { add: ['NET_RAW', 'NET_ADMIN'] } },
      "spec.security.capabilities.add: NET_RAW, NET_ADMIN are not on this deployment's list of capabilities a spec may add (CTFLEET_ALLOWED_EXTRA_CAPABILITIES is empty: none)",
    ],
    ['ALL', LOOSENED, { capabilities: { add: ['ALL'] } }, "spec.security.capabilities.add: ALL is not on this deployment's list of capabilities a spec may add (CTFLEET_ALLOWED_EXTRA_CAPABILITIES: SYS_NICE, NET_BROADCAST)"],
    ['a runtime not on the allow-list', LOOSENED, { runtime: 'kata' }, "spec.security.runtime: kata is not on this deployment's list of runtimes (CTFLEET_ALLOWED_RUNTIMES: runsc)"],
    ['any runtime while the allow-list is empty', DEFAULT_HARDENING, { runtime: 'runsc' }, "spec.security.runtime: runsc is not on this deployment's list of runtimes (CTFLEET_ALLOWED_RUNTIMES is empty: only the engine's default runtime)"],
    ['a tmpfs on /', LOOSENED, { tmpfs: [{ path: '/', size: '1Mi' }] }, 'spec.security.tmpfs[0].path: the root cannot be a tmpfs; set readOnlyRootFilesystem and mount tmpfs below it'],
    ...['tmp', '/tmp/', '/a//b', '/tmp/../etc', '/./tmp', '/tmp/..', '/a b', '/a:b', '/a,size=1g', ''].map(
      (path): [string, HardeningProfile, SecuritySpec, string] => [
        `a tmpfs path that is not absolute and plain: ${JSON.stringify(path)}`,
        LOOSENED,
        { tmpfs: [{ path, size: '1Mi' }] },
        `spec.security.tmpfs[0].path: "${path}" is not an absolute path of plain segments (letters, digits, '.', '_', '-'; no '.' or '..' segment, no trailing '/')`,
      ],
    ),
    ...['/proc', '/proc/sys', '/sys/fs/cgroup', '/dev', '/dev/shm'].map((path): [string, HardeningProfile, SecuritySpec, string] => [
      `a tmpfs over the kernel's filesystems: ${path}`,
      LOOSENED,
      { tmpfs: [{ path, size: '1Mi' }] },
      `spec.security.tmpfs[0].path: ${path} is under /proc, /sys or /dev, which the runtime manages`,
    ]),
    ['the same tmpfs path twice', LOOSENED, { tmpfs: [{ path: '/tmp', size: '1Mi' }, { path: '/tmp', size: '2Mi' }] }, 'spec.security.tmpfs[1].path: /tmp is mounted twice'],
    ['a tmpfs size that is not a positive quantity', LOOSENED, { tmpfs: [{ path: '/tmp', size: '0' }] }, 'spec.security.tmpfs[0].size: "0" is not a positive quantity'],
    [
      'tmpfs adding up to more than the maximum',
      LOOSENED,
      { tmpfs: [{ path: '/tmp', size: '64Mi' }, { path: '/run', size: '65Mi' }] },
      "spec.security.tmpfs: 129Mi in all is above this deployment's maximum of 128Mi (CTFLEET_MAX_TMPFS_SIZE)",
    ],
    [
      'every problem at once',
      DEFAULT_HARDENING,
      { capabilities: { add: ['SYS_NICE'] }, runtime: 'runsc', tmpfs: [{ path: '/', size: 'lots' }] },
      "spec.security.capabilities.add: SYS_NICE is not on this deployment's list of capabilities a spec may add (CTFLEET_ALLOWED_EXTRA_CAPABILITIES is empty: none); " +
        "spec.security.runtime: runsc is not on this deployment's list of runtimes (CTFLEET_ALLOWED_RUNTIMES is empty: only the engine's default runtime); " +
        'spec.security.tmpfs[0].path: the root cannot be a tmpfs; set readOnlyRootFilesystem and mount tmpfs below it; ' +
        'spec.security.tmpfs[0].size: "lots" is not a positive quantity',
    ],
  ];
  for (const [name, profile, security, message] of refused) {
    test(`InvalidSpec: ${name}`, () => {
      assert.throws(
        () => securityOf(spec(security), profile),
        (error: unknown) => {
          assert.ok(error instanceof CtfleetError);
          assert.equal(error.code, 'InvalidSpec');
          assert.equal(error.retry, 'permanent');
          assert.equal(error.message, message);
          return true;
        },
      );
    });
  }

  test('is pure: the same spec and deployment always give the same shape', () => {
    const security: SecuritySpec = { capabilities: { add: ['SYS_NICE', 'SYS_NICE'] }, readOnlyRootFilesystem: true, tmpfs: [{ path: '/tmp', size: '8Mi' }], runtime: 'runsc' };
    const first = securityOf(spec(security), LOOSENED);
    assert.deepEqual(securityOf(spec(security), LOOSENED), first);
    assert.deepEqual(first.capabilities, [...DEFAULTS, 'SYS_NICE'], 'a capability asked twice is added once');
  });
});
