import type { FlagSpec, InstanceSpec } from './challenge-instance.ts';
import { permanent } from './errors.ts';
import { perTeamFlagPart, renderFlag } from './flags.ts';
import type { ContainerFile, FlagStore } from './ports.ts';

/** The instance a flag is made for. */
export interface FlagSubject {
  namespace: string;
  name: string;
  uid: string;
  team: string;
  challenge: string;
}

/**
 * The flag of one instance, by its Challenge's `flag.kind` (docs/flags.md):
 * PerTeam derived from the deployment key, PerInstance the random part kept in the
 * instance's own Secret, Static the organisers' Secret. Never logged or stored by
 * ctfleet beyond those Secrets; errors name Secrets, never values.
 */
export async function flagOf(flag: FlagSpec, subject: FlagSubject, store: FlagStore): Promise<string> {
  switch (flag.kind) {
    case 'PerTeam':
      return renderFlag(flag.format, perTeamFlagPart(await store.deploymentKey(), { namespace: subject.namespace, challenge: subject.challenge, team: subject.team }));
    case 'PerInstance':
      return renderFlag(flag.format, await store.instanceFlagPart({ namespace: subject.namespace, name: subject.name, uid: subject.uid }));
    case 'Static': {
      const ref = flag.static?.secretKeyRef;
      if (ref === undefined) throw permanent('InvalidSpec', 'spec.flag.static.secretKeyRef: a Static flag names the Secret that holds it');
      return renderFlag(flag.format, await store.staticFlag(subject.namespace, ref));
    }
  }
}

/**
 * Where the flag goes: an environment variable (Env delivery, `flag.env`), or a
 * file at `flag.path` written before the container starts (File delivery). Pure.
 */
export function deliverFlag(spec: InstanceSpec, flag: FlagSpec, value: string): { spec: InstanceSpec; files: ContainerFile[] } {
  if (flag.delivery === 'File') return { spec, files: [{ path: flag.path, content: `${value}\n`, mode: 0o444 }] };
  return { spec: { ...spec, env: [...(spec.env ?? []).filter((variable) => variable.name !== flag.env), { name: flag.env, value }] }, files: [] };
}
