import { permanent } from './errors.ts';

/** API group, version and resource names of ctfleet's custom resources. Defined once. */
export const GROUP = 'ctfleet.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'ChallengeInstance';
export const PLURAL = 'challengeinstances';
/** The organisers' resource that instances name in `spec.challengeRef` (short name `chal`). */
export const CHALLENGE_KIND = 'Challenge';
export const CHALLENGE_PLURAL = 'challenges';

/** Finalizer that keeps an instance until its container is confirmed gone. */
export const FINALIZER = `${GROUP}/cleanup`;

/**
 * Finalizer that keeps a Challenge while ChallengeInstances admitted before its
 * deletion still name it (docs/challenges.md, "Deleting a Challenge").
 */
export const CHALLENGE_FINALIZER = `${GROUP}/instances`;

/** Labels on every container (and object) ctfleet manages. */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  uid: `${GROUP}/uid`,
  namespace: `${GROUP}/namespace`,
  name: `${GROUP}/name`,
  team: `${GROUP}/team`,
  challenge: `${GROUP}/challenge`,
  generation: `${GROUP}/generation`,
  specHash: `${GROUP}/spec-hash`,
  /** The worker node that created the container; each worker only sweeps its own. */
  node: `${GROUP}/node`,
  /** The container's host ports, so port use is known without inspecting each container. */
  hostPorts: `${GROUP}/host-ports`,
  /** On a container: the egress it was given; on a network: the egress of its containers. */
  egress: `${GROUP}/egress`,
  /** On a network: the hash of its settings; a network whose hash is not current is drained and removed. */
  networkConfig: `${GROUP}/network-config`,
  /** On a container made from a Challenge: that Challenge's metadata.generation. */
  challengeGeneration: `${GROUP}/challenge-generation`,
  /** On an instance's flag Secret: the name of the ChallengeInstance it belongs to. */
  instance: `${GROUP}/instance`,
} as const;

export const MANAGED_BY = 'ctfleet';

/** Field managers for server-side apply: each writer owns distinct status fields. */
export const FIELD_MANAGERS = {
  controller: 'ctfleet-controller',
  worker: 'ctfleet-worker',
} as const;

/** Instance containers' names start with this. */
export const INSTANCE_NAME_PREFIX = 'ctfleet-';

/**
 * Docker container name of an instance: deterministic, so create is idempotent.
 * `_` separates namespace and name because neither may contain it: with `-`,
 * namespace "a-b" name "c" and namespace "a" name "b-c" would share a container.
 */
export function containerName(namespace: string, name: string): string {
  return `${INSTANCE_NAME_PREFIX}${namespace}_${name}`;
}

/** The key of the deployment key in the Secret CTFLEET_FLAG_KEY_SECRET names. */
export const FLAG_KEY_SECRET_KEY = 'key';

/** The key of the random part in an instance's flag Secret. */
export const FLAG_PART_SECRET_KEY = 'flag-part';

/**
 * Name of the Secret holding an instance's random flag part: `<name>-flag-<the
 * first 8 hex digits of its uid>`, at most 63 + 14 characters (instance names are DNS
 * labels). The uid's digits keep an instance deleted and created again under the
 * same name from meeting its predecessor's Secret while the garbage collector has
 * not yet removed it (that Secret belongs to another uid and would be refused).
 */
export function flagSecretName(name: string, uid: string): string {
  const digits = uid.toLowerCase().replace(/[^0-9a-f]/g, '').slice(0, 8);
  if (digits.length < 8) throw permanent('MalformedObject', `ChallengeInstance ${name} has no usable uid`);
  return `${name}-flag-${digits}`;
}

/** A DNS label (RFC 1123) without its 63-character cap: namespaces, teams, challenges, port names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
