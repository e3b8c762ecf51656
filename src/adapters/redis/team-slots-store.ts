import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { transient } from '../../domain/errors.ts';
import type { SlotRef, SlotRequest, SlotVerdict, TeamSlots } from '../../domain/team-slots.ts';

export interface TeamSlotsTimings {
  /** How long a reservation holds its slot when the create never reports back (a crash, an unknown outcome). */
  reservationTtlMs: number;
  /** The oldest listing a reservation may be judged on; confirmed creates are remembered this long. */
  listingMaxAgeMs: number;
}

/**
 * A create the API server answers within two minutes is covered even when its
 * outcome never reaches us; listings are fresh for ten seconds.
 */
export const TEAM_SLOTS_TIMINGS: TeamSlotsTimings = { reservationTtlMs: 120_000, listingMaxAgeMs: 10_000 };

// KEYS: reservations (zset "name|token" → deadline), confirmed creates (zset name → confirmed at).
// ARGV: name, token, limit, listedAt, reservation ttl, listing max age, then the listed names.
const RESERVE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local listedAt = tonumber(ARGV[4])
local maxAge = tonumber(ARGV[6])
if now - listedAt > maxAge then return {'stale', 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', now - maxAge))
local held, count = {}, 0
local function hold(name)
  if not held[name] then
    held[name] = true
    count = count + 1
  end
end
for i = 7, #ARGV do hold(ARGV[i]) end
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do hold(string.match(member, '^[^|]+')) end
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], string.format('%.0f', listedAt), '+inf')) do hold(name) end
local name = ARGV[1]
if not held[name] then
  if count >= tonumber(ARGV[3]) then return {'full', count} end
  count = count + 1
end
local ttl = tonumber(ARGV[5])
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), name .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return {'reserved', count}
`;

// KEYS: as above. ARGV: name, token, listing max age.
const CONFIRM = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%.0f', now), ARGV[1])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + 1000)
return 1
`;

/**
 * {@link TeamSlots} in Redis: per namespace and team, a sorted set of reservations
 * by deadline and one of confirmed creates by the time they were confirmed, both
 * under the deployment's prefix (one Redis Cluster slot), both expiring when the
 * team goes quiet. Times are Redis's clock, so API replicas' clocks never matter.
 *
 * Guarantees: the count and the reservation happen in one Lua script, so
 * concurrent creates through any number of replicas never hold more than the
 * limit. Nothing leaks: a reservation lapses after `reservationTtlMs` unless it
 * is confirmed or released, and a confirmed create is counted from its record
 * only by listings that began before the confirmation; later listings are the
 * truth, so an instance deleted (kubectl, expiry) frees its slot.
 *
 * Caveat: a create the API server commits more than `reservationTtlMs` after it
 * was sent, with its outcome lost to us, could let one more through.
 */
export class RedisTeamSlots implements TeamSlots {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly timings: TeamSlotsTimings;

  constructor(redis: Redis, prefix: string, timings: TeamSlotsTimings = TEAM_SLOTS_TIMINGS) {
    this.redis = redis;
    this.prefix = prefix;
    this.timings = timings;
  }

  static keysFor(prefix: string, namespace: string, team: string): [reservations: string, confirmed: string] {
    const base = `${prefix}:api:slots:${namespace}:${team}`;
    return [`${base}:reserved`, `${base}:confirmed`];
  }

  async now(): Promise<number> {
    const [seconds, micros] = await this.call('read the Redis clock', () => this.redis.time());
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  async reserve(request: SlotRequest): Promise<SlotVerdict> {
    const token = randomBytes(8).toString('hex');
    const { reservationTtlMs, listingMaxAgeMs } = this.timings;
    const [verdict, held] = (await this.call(`reserve a slot of team ${request.team}`, () =>
      this.redis.eval(RESERVE, 2, ...RedisTeamSlots.keysFor(this.prefix, request.namespace, request.team), request.name, token, request.limit, request.listedAt, reservationTtlMs, listingMaxAgeMs, ...request.listed),
    )) as [string, number];
    if (verdict === 'stale') return { kind: 'stale' };
    if (verdict === 'full') return { kind: 'full', held };
    return { kind: 'reserved', held, slot: { namespace: request.namespace, team: request.team, name: request.name, token } };
  }

  async confirm(slot: SlotRef): Promise<void> {
    await this.call(`confirm the slot of ${slot.namespace}/${slot.name}`, () =>
      this.redis.eval(CONFIRM, 2, ...RedisTeamSlots.keysFor(this.prefix, slot.namespace, slot.team), slot.name, slot.token, this.timings.listingMaxAgeMs),
    );
  }

  async release(slot: SlotRef): Promise<void> {
    const [reservations] = RedisTeamSlots.keysFor(this.prefix, slot.namespace, slot.team);
    await this.call(`release the slot of ${slot.namespace}/${slot.name}`, () => this.redis.zrem(reservations, `${slot.name}|${slot.token}`));
  }

  private async call<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw transient('RedisUnavailable', `${what}: ${error instanceof Error ? error.message : String(error)}`, error);
    }
  }
}
