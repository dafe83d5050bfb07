// Guest to guest in the simulator: two firmware machines whose devices route packets to each
// other by CID (what the vhost-user backend does for sibling VMs). The peer client
// (opt/vsockfw/peer) echoes a pattern through the other firmware's echo service; the server
// only accepts a sibling listed in opt/vsockfw/siblings.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Machine } from "../sim/machine";

async function siblings(serverOptions: Record<string, string>, clientOptions: Record<string, string>) {
  const server = await Machine.create({ guestCid: 33, options: serverOptions });
  const client = await Machine.create({ guestCid: 34, options: clientOptions });
  const link = (from: Machine, to: Machine) => {
    from.device!.routeToCid = (p) => {
      if (p.header.dstCid !== to.device!.guestCid) return false;
      to.device!.deliverToGuest(p.header, p.payload);
      return true;
    };
  };
  link(server, client);
  link(client, server);
  assert.ok(server.init() && client.init());
  const runBoth = (predicate: () => boolean, rounds: number) => {
    for (let i = 0; i < rounds && !predicate(); i++) {
      server.poll();
      client.poll();
    }
    return predicate();
  };
  return { server, client, runBoth };
}

test("peer client: 100000 pattern bytes through a sibling's echo service come back intact", async () => {
  const { server, client, runBoth } = await siblings({ siblings: "34" }, { peer: "33:1234:100000" });
  assert.equal(client.logLines(/info app: peer client cid=33 port=1234 bytes=100000/).length, 1);
  const finished = runBoth(() => client.logLines(/peer echo/).length > 0, 20000);
  assert.ok(finished, client.logText().slice(-2000));
  assert.match(client.logLines(/peer echo/)[0], /info app: peer echo ok cid=33 port=1234 bytes=100000 us=\d+ attempts=1$/);
  assert.equal(server.logLines(/connection opened dir=in local=1234 peer=34:/).length, 1);
  assert.deepEqual(server.device!.violations, []);
  assert.deepEqual(client.device!.violations, []);
  // Apart from the boot greeting to the host, the client's packets went to the sibling.
  const toSibling = client.device!.sentByGuest.filter((p) => p.header.dstPort !== 4050);
  assert.ok(toSibling.some((p) => p.header.op === 5), "RW packets to the sibling");
  assert.ok(toSibling.every((p) => p.header.dstCid === 33n && p.header.srcCid === 34n));
});

test("without opt/vsockfw/siblings the server drops the sibling's packets without a reply; the client keeps retrying", async () => {
  const { server, client, runBoth } = await siblings({}, { peer: "33:1234" });
  runBoth(() => false, 3000);
  assert.equal(server.logLines(/connection opened/).length, 0);
  assert.equal(server.device!.sentByGuest.filter((p) => p.header.dstCid === 34n).length, 0, "no RST to a cid that is not a sibling");
  assert.equal(client.logLines(/peer echo/).length, 0, "still connecting (retries until its attempts run out)");
  assert.ok(client.device!.sentByGuest.filter((p) => p.header.op === 1).length >= 1, "REQUESTs went out");
});

test("a malformed peer option is reported and ignored; siblings= ignores the host and reserved cids", async () => {
  const bad = await Machine.create({ guestCid: 34, options: { peer: "33-1234" } });
  assert.ok(bad.init());
  assert.equal(bad.logLines(/warn app: peer option ignored .* value=33-1234/).length, 1);
  const { client, runBoth } = await siblings({ siblings: "0,1,2,34" }, { peer: "33:1234:10" });
  assert.ok(runBoth(() => client.logLines(/peer echo/).length > 0, 20000));
  assert.match(client.logLines(/peer echo/)[0], /peer echo ok .*bytes=10 /);
});
