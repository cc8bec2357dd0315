// Recovery after a reconnect, as users see it: a client that resubscribes
// with since={offset, epoch} gets recovered:true and exactly the messages it
// missed, in order, then live ones, with no gap and no duplicate, even while
// others keep publishing; and recovered:false (reload your state) when the
// history is lost (FLUSHALL), trimmed past since, or longer than
// --recovery-max-messages. Publishers here are WebSocket clients, so this
// file needs history and recovery only (not the HTTP API).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Scope, uniq, redisCli, waitFor, sleep, T, QUIET_MS,
  assertPosition, assertOffsets, takeMessages, takeUntilOffset, subscribeSince, assertArrivalOrder, publishMany,
} from './lib/index.mjs';

const s = new Scope('recovery');
let redis;
let A;
let B;
let Trim; // --history chat=10:3600
let Cap; // --recovery-max-messages 5

before(async () => {
  redis = await s.redis();
  // room: a namespace with a long history, so the concurrent test cannot
  // outrun it; chat: and job: keep their defaults on A and B.
  [A, B, Trim, Cap] = await Promise.all([
    s.gateway({ name: 'recovery-A', redis, args: ['--history', 'room=1000:3600'] }),
    s.gateway({ name: 'recovery-B', redis, args: ['--history', 'room=1000:3600'] }),
    s.gateway({ name: 'recovery-trim', redis, args: ['--history', 'chat=10:3600'] }),
    s.gateway({ name: 'recovery-cap', redis, args: ['--recovery-max-messages', '5'] }),
  ]);
});
after(() => s.close());

const chatPerms = { channels: ['chat:*'], publish: ['chat:*'] };
const texts = (prefix, n, from = 1) => Array.from({ length: n }, (_, i) => ({ text: `${prefix} ${from + i}` }));
const onChannel = (c, ch) => c.received.filter((m) => m && m.type === 'message' && m.channel === ch);

/**
 * A client on gw subscribed to ch that sees `n` messages published by
 * `publisher`, then disconnects. Resolves {sub, epoch, last} (last offset seen).
 */
async function seeThenLeave(gw, ch, publisher, n, perms = chatPerms) {
  const sub = uniq('reader');
  const c = await s.user(gw, { sub, ...perms }, `${sub}@first`);
  const r = await subscribeSince(c, ch);
  assertPosition(r, 0, undefined, 'subscribed to a fresh channel');
  await publishMany(publisher, ch, texts('seen', n));
  const seen = await takeMessages(c, ch, n);
  assertOffsets(seen, 1, n, r.epoch, 'seen before leaving');
  await c.close();
  return { sub, epoch: r.epoch, last: seen[n - 1].offset };
}

describe('recovered:true', () => {
  test('a client misses exactly 50 messages published on B, reconnects to A with since: those 50 in order, then live ones', async () => {
    const room = `chat:${uniq('room')}`;
    const bob = await s.user(B, { sub: uniq('bob'), ...chatPerms }, 'bob@B');
    // carol stays on A the whole time, so A holds the channel live while alice recovers.
    const carol = await s.user(A, { sub: uniq('carol'), ...chatPerms }, 'carol@A');
    await subscribeSince(carol, room);
    const { sub, epoch, last } = await seeThenLeave(A, room, bob, 3);
    assert.equal(last, 3);

    const missed = texts('missed', 50);
    await publishMany(bob, room, missed);
    const alice = await s.user(A, { sub, ...chatPerms }, 'alice@A again');
    const r = await subscribeSince(alice, room, { offset: last, epoch });
    assert.equal(r.recovered, true, `subscribed: ${JSON.stringify(r)}`);
    assert.equal(r.epoch, epoch, 'epoch in the subscribed reply');
    assert.equal(typeof r.offset, 'number', `offset in the subscribed reply: ${JSON.stringify(r)}`);

    const replay = await takeMessages(alice, room, 50);
    assertOffsets(replay, 4, 53, epoch, 'replayed');
    assert.deepEqual(replay.map((m) => m.data), missed, 'replayed data');
    assert.ok(replay.every((m) => m.from === bob.user), `replayed messages keep from=${bob.user}`);
    assertArrivalOrder(alice, r, replay[0]);

    const live = texts('live', 3);
    await publishMany(bob, room, live);
    const liveGot = await takeMessages(alice, room, 3);
    assertOffsets(liveGot, 54, 56, epoch, 'live after recovery');
    assert.deepEqual(liveGot.map((m) => m.data), live);
    await alice.expectNoMessage(QUIET_MS, { type: 'message' });
    assertOffsets(onChannel(alice, room), 4, 56, epoch, 'everything alice got on the new connection');
    assertOffsets(onChannel(carol, room), 1, 56, epoch, 'carol, subscribed throughout');
  });

  test('4 concurrent publishers while 3 clients recover: each ends with every offset since+1..top once, in order', async () => {
    const ch = `room:${uniq('busy')}`;
    const perms = { channels: ['room:*'], publish: ['room:*'] };
    const pubs = await Promise.all([A, B, A, B].map((g, k) => s.user(g, { sub: uniq(`pub${k}`), ...perms }, `pub${k}@${g === A ? 'A' : 'B'}`)));
    const { sub, epoch, last } = await seeThenLeave(A, ch, pubs[0], 5, perms);
    await publishMany(pubs[1], ch, texts('missed', 20));
    const recoverers = await Promise.all([A, B, A].map((g, k) => s.user(g, { sub, ...perms }, `recoverer${k}`)));

    const PER = 40;
    let acked = 0;
    const runs = pubs.map(async (p, k) => {
      for (let i = 0; i < PER; i++) {
        await p.publish(ch, { p: k, i });
        acked += 1;
        if (i % 4 === 3) await sleep(1);
      }
    });
    runs.forEach((p) => p.catch(() => {})); // awaited below; no unhandled rejection meanwhile
    const replies = [];
    const ackedAtReply = [];
    for (const [k, at] of [[0, 10], [1, 60], [2, 110]]) {
      await waitFor(() => acked >= at, { timeout: T(10000), interval: 2, what: `${at} concurrent publishes acknowledged` });
      const p = subscribeSince(recoverers[k], ch, { offset: last, epoch }).then((r) => {
        ackedAtReply[k] = acked;
        return r;
      });
      p.catch(() => {}); // awaited below
      replies.push(p);
    }
    await Promise.all(runs);
    const total = 4 * PER;
    const top = 5 + 20 + total;
    const rs = await Promise.all(replies);
    // The premise: publishing went on while the clients recovered.
    assert.ok(ackedAtReply.some((n) => n < total), `no recovery overlapped the publishers (acks at replies ${JSON.stringify(ackedAtReply)})`);

    await Promise.all(recoverers.map(async (c, k) => {
      assert.equal(rs[k].recovered, true, `${c.name} subscribed (after ${[10, 60, 110][k]} acks): ${JSON.stringify(rs[k])}`);
      const got = await takeUntilOffset(c, ch, top);
      assertOffsets(got, last + 1, top, epoch, c.name);
      // Each publisher's own messages in its order.
      for (let p = 0; p < 4; p++) {
        const is = got.filter((m) => m.data && m.data.p === p).map((m) => m.data.i);
        assert.deepEqual(is, Array.from({ length: PER }, (_, i) => i), `${c.name}: publisher ${p} order`);
      }
    }));
    await Promise.all(recoverers.map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
    recoverers.forEach((c) => assertOffsets(onChannel(c, ch), last + 1, top, epoch, `${c.name}: all messages`));
  });

  test('job channels: recovery replays only what was missed, with no extra copy of the latest state', async () => {
    const job = `job:${uniq('job')}`;
    const perms = { channels: ['job:*'], publish: ['job:*'] };
    const worker = await s.user(B, { sub: uniq('worker'), ...perms }, 'worker@B');
    const { sub, epoch, last } = await seeThenLeave(A, job, worker, 3, perms);

    // Nothing missed: recovered, and nothing to show (not even the latest state again).
    const same = await s.user(A, { sub, ...perms }, 'nothing missed');
    const r0 = await subscribeSince(same, job, { offset: last, epoch });
    assert.equal(r0.recovered, true, `since = top: ${JSON.stringify(r0)}`);
    await same.expectNoMessage(QUIET_MS, { type: 'message' });

    await publishMany(worker, job, [{ progress: 80 }, { progress: 90 }]);
    assertOffsets(await takeMessages(same, job, 2), 4, 5, epoch, 'live on the first recoverer');
    const back = await s.user(A, { sub, ...perms }, 'two missed');
    const r = await subscribeSince(back, job, { offset: last, epoch });
    assert.equal(r.recovered, true, `since 3 of 5: ${JSON.stringify(r)}`);
    const got = await takeMessages(back, job, 2);
    assertOffsets(got, 4, 5, epoch, 'replay');
    assert.deepEqual(got.map((m) => m.data.progress), [80, 90]);
    await back.expectNoMessage(QUIET_MS, { type: 'message' });
  });
});

describe('recovered:false', () => {
  test('FLUSHALL (history lost): recovered false with a new epoch, then only new messages', async () => {
    const room = `chat:${uniq('flush')}`;
    const bob = await s.user(B, { sub: uniq('bob'), ...chatPerms }, 'bob@B');
    const { sub, epoch, last } = await seeThenLeave(A, room, bob, 3);
    assert.equal(await redisCli(redis.port, 'FLUSHALL'), 'OK');
    const afterFlush = await publishMany(bob, room, texts('after flush', 2));
    for (const [i, p] of afterFlush.entries()) {
      if ('offset' in p) {
        assertPosition(p, i + 1, undefined, 'published after FLUSHALL (offsets start again at 1)');
        assert.notEqual(p.epoch, epoch, 'published after FLUSHALL: a new epoch');
      }
    }

    const alice = await s.user(A, { sub, ...chatPerms }, 'alice@A again');
    const r = await subscribeSince(alice, room, { offset: last, epoch });
    assert.equal(r.recovered, false, `subscribed: ${JSON.stringify(r)}`);
    assertPosition(r, 2, undefined, 'subscribed after FLUSHALL');
    assert.notEqual(r.epoch, epoch, 'a new epoch after FLUSHALL');
    await publishMany(bob, room, [{ text: 'live' }]);
    const m = await alice.nextOn(room);
    assertPosition(m, 3, r.epoch, 'first message after recovered:false');
    assert.deepEqual(m.data, { text: 'live' });
    await alice.expectNoMessage(QUIET_MS, { type: 'message' });
  });

  test('an epoch the channel never had: recovered false', async () => {
    const room = `chat:${uniq('epoch')}`;
    const bob = await s.user(B, { sub: uniq('bob'), ...chatPerms }, 'bob@B');
    const { sub, epoch, last } = await seeThenLeave(A, room, bob, 2);
    const alice = await s.user(A, { sub, ...chatPerms });
    const r = await subscribeSince(alice, room, { offset: last, epoch: epoch === 'zzzzzzzzzzzz' ? 'yyyyyyyyyyyy' : 'zzzzzzzzzzzz' });
    assert.equal(r.recovered, false, `since with a foreign epoch: ${JSON.stringify(r)}`);
    assert.equal(r.epoch, epoch, 'the reply tells the real epoch');
    await alice.expectNoMessage(QUIET_MS, { type: 'message' });
  });

  test('history trimmed past since (--history chat=10:3600, 20 published after): recovered false', async () => {
    const room = `chat:${uniq('trim')}`;
    const bob = await s.user(Trim, { sub: uniq('bob'), ...chatPerms }, 'bob@trim');
    const { sub, epoch, last } = await seeThenLeave(Trim, room, bob, 2);
    await publishMany(bob, room, texts('missed', 20));
    const top = last + 20;

    const alice = await s.user(Trim, { sub, ...chatPerms }, 'alice@trim again');
    const r = await subscribeSince(alice, room, { offset: last, epoch });
    assert.equal(r.recovered, false, `20 missed with 10 kept: ${JSON.stringify(r)}`);
    assertPosition(r, top, epoch, 'subscribed (trimmed)');

    // Exactly 10 missed still fits.
    const dave = await s.user(Trim, { sub: uniq('dave'), ...chatPerms }, 'dave@trim');
    const r2 = await subscribeSince(dave, room, { offset: top - 10, epoch });
    assert.equal(r2.recovered, true, `10 missed with 10 kept: ${JSON.stringify(r2)}`);
    assertOffsets(await takeMessages(dave, room, 10), top - 9, top, epoch, 'replay of the 10 kept');

    await publishMany(bob, room, [{ text: 'live' }]);
    const m = await alice.nextOn(room);
    assertPosition(m, top + 1, epoch, 'first message after recovered:false');
    assertPosition(await dave.nextOn(room), top + 1, epoch, 'live after the replay');
    await Promise.all([alice, dave].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('more than --recovery-max-messages (5) missed: recovered false; exactly 5: recovered true', async () => {
    const room = `chat:${uniq('cap')}`;
    const bob = await s.user(Cap, { sub: uniq('bob'), ...chatPerms }, 'bob@cap');
    const { sub, epoch, last } = await seeThenLeave(Cap, room, bob, 1);
    await publishMany(bob, room, texts('missed', 6));
    const top = last + 6;

    const six = await s.user(Cap, { sub, ...chatPerms }, '6 missed');
    const r = await subscribeSince(six, room, { offset: last, epoch });
    assert.equal(r.recovered, false, `6 missed, cap 5: ${JSON.stringify(r)}`);
    assertPosition(r, top, epoch, 'subscribed (over the cap)');

    const five = await s.user(Cap, { sub, ...chatPerms }, '5 missed');
    const r5 = await subscribeSince(five, room, { offset: last + 1, epoch });
    assert.equal(r5.recovered, true, `5 missed, cap 5: ${JSON.stringify(r5)}`);
    assertOffsets(await takeMessages(five, room, 5), last + 2, top, epoch, 'replay of 5');

    await publishMany(bob, room, [{ text: 'live' }]);
    assertPosition(await six.nextOn(room), top + 1, epoch, 'first message after recovered:false');
    assertPosition(await five.nextOn(room), top + 1, epoch, 'live after the replay');
    await Promise.all([six, five].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('since on a channel without history: recovered false', async () => {
    const ch = `news:${uniq('n')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['news:*'] });
    const r = await subscribeSince(c, ch, { offset: 3, epoch: 'abc' });
    assert.equal(r.recovered, false, `subscribed: ${JSON.stringify(r)}`);
  });
});

describe('Redis restarted without persistence under a subscribed client', () => {
  let redis2;
  let R1;
  let R2;
  before(async () => {
    redis2 = await s.redis();
    [R1, R2] = await Promise.all([
      s.gateway({ name: 'recovery-R1', redis: redis2 }),
      s.gateway({ name: 'recovery-R2', redis: redis2 }),
    ]);
  });

  test('the client hears of the new epoch (a message of it, or a gap error); with since it gets recovered false; the room goes on', async () => {
    const room = `chat:${uniq('restart')}`;
    const alice = await s.user(R1, { sub: uniq('alice'), ...chatPerms }, 'alice@R1');
    const bob = await s.user(R2, { sub: uniq('bob'), ...chatPerms }, 'bob@R2');
    const sub = await subscribeSince(alice, room);
    await publishMany(bob, room, texts('before', 2));
    const seen = await takeMessages(alice, room, 2);
    assertOffsets(seen, 1, 2, sub.epoch, 'before the restart');

    await redis2.kill();
    await Promise.all([R1.waitStatus('/readyz', 503, T(10000)), R2.waitStatus('/readyz', 503, T(10000))]);
    await redis2.start();
    await Promise.all([R1.waitStatus('/readyz', 200, T(20000)), R2.waitStatus('/readyz', 200, T(20000))]);
    // The gateway either subscribes the room again for alice, or tells her of
    // the gap (history lost) and drops her subscription.
    const roomError = (m) => m && m.type === 'error' && m.channel === room;
    await waitFor(async () => alice.queue.some(roomError) || (await redis2.numsub(`wsgw:${room}`)) === 1,
      { timeout: T(10000), what: `${room} subscribed again by R1, or a gap error for alice` });

    await publishMany(bob, room, [{ text: 'after 1' }]);
    const next = await alice.nextMessage((m) => (m.type === 'message' && m.channel === room) || roomError(m));
    let epoch2;
    if (next.type === 'error') {
      assert.equal(next.code, 'gap', `error after the restart: ${JSON.stringify(next)}`);
      const r = await subscribeSince(alice, room, { offset: 2, epoch: sub.epoch });
      assert.equal(r.recovered, false, `resubscribe after the gap: ${JSON.stringify(r)}`);
      assert.notEqual(r.epoch, sub.epoch, 'a new epoch after the restart');
      epoch2 = r.epoch;
      // The message that revealed the gap may or may not be replayed; either way only once.
    } else {
      assert.notEqual(next.epoch, sub.epoch, `the first message after the restart has a new epoch: ${JSON.stringify(next)}`);
      assertPosition(next, 1, undefined, 'first message after the restart');
      epoch2 = next.epoch;
      // A reconnecting client with the old position learns that it must reload.
      const carol = await s.user(R2, { sub: uniq('carol'), ...chatPerms }, 'carol@R2');
      const r = await subscribeSince(carol, room, { offset: 2, epoch: sub.epoch });
      assert.equal(r.recovered, false, `since the old epoch: ${JSON.stringify(r)}`);
      assertPosition(r, 1, epoch2, 'subscribed with the old epoch');
    }

    await publishMany(bob, room, [{ text: 'after 2' }]);
    const m = await alice.nextOn(room, (x) => x.data.text === 'after 2');
    assertPosition(m, 2, epoch2, '"after 2"');
    const dup = onChannel(alice, room).filter((x) => x.epoch === epoch2).map((x) => x.offset);
    assert.equal(new Set(dup).size, dup.length, `duplicates in the new epoch: ${JSON.stringify(dup)}`);
    alice.assertOpen();
  });
});
