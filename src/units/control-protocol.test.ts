import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { goDuration, goJson, parseRequest, ProtocolError } from "./control-protocol.ts";

describe("control protocol: requests", () => {
  it("reads the plain form: the first word (any case) is the command", () => {
    assert.deepEqual(parseRequest("status"), { kind: "status" });
    assert.deepEqual(parseRequest("STATUS"), { kind: "status" });
    assert.deepEqual(parseRequest("ping bar"), { kind: "ping", target: "bar" });
    assert.deepEqual(parseRequest("work list"), { kind: "work-list" });
    assert.deepEqual(parseRequest("work list abcd1234"), { kind: "work-list", unitId: "abcd1234" });
    assert.deepEqual(parseRequest("Work Status abcd1234"), {
      kind: "work-status",
      unitId: "abcd1234",
    });
    assert.deepEqual(parseRequest("work force-release x"), {
      kind: "work-force-release",
      unitId: "x",
    });
    assert.deepEqual(parseRequest("work results x"), {
      kind: "work-results",
      unitId: "x",
      startPos: 0,
    });
    assert.deepEqual(parseRequest("work results x 42"), {
      kind: "work-results",
      unitId: "x",
      startPos: 42,
    });
    assert.deepEqual(parseRequest("work submit bar echoint -n 3"), {
      kind: "work-submit",
      node: "bar",
      workType: "echoint",
      params: { params: "-n 3" },
      signWork: false,
    });
  });

  it("reads the JSON form as receptorctl writes it", () => {
    assert.deepEqual(parseRequest('{"command":"status","requested_fields":["Version"]}'), {
      kind: "status",
      fields: ["Version"],
    });
    assert.deepEqual(
      parseRequest(
        '{"command": "work", "subcommand": "submit", "node": "bar", "worktype": "echoint", "ttl": "10m", "signwork": "true", "secret_x": "y", "params": "-v"}',
      ),
      {
        kind: "work-submit",
        node: "bar",
        workType: "echoint",
        params: { secret_x: "y", params: "-v" },
        signWork: true,
        ttl: "10m",
      },
    );
    assert.deepEqual(
      parseRequest(
        '{"command":"work","subcommand":"results","unitid":"u","startpos":7,"signature":"s"}',
      ),
      { kind: "work-results", unitId: "u", startPos: 7, signature: "s" },
    );
    assert.deepEqual(parseRequest('{"command":"work","subcommand":"cancel","unitid":"u"}'), {
      kind: "work-cancel",
      unitId: "u",
    });
  });

  it("says what is wrong with a bad request", () => {
    const bad: Array<[string, RegExp]> = [
      ["", /Unknown command/],
      ["frob", /Unknown command 'frob'/],
      ["x".repeat(100_000), /^Unknown command 'x{80}\.\.\.' \(100000 bytes\); this node knows/],
      ["{oops", /invalid JSON/],
      ["[1]", /Unknown command/],
      ['{"command":3}', /command must be a string/],
      ['{"x":1}', /JSON did not contain a command/],
      ['{"command":"status","requested_fields":[1]}', /must be a string/],
      ["status now", /does not take parameters/],
      ["ping", /no ping target/],
      ["work", /needs a subcommand/],
      ["work dance", /unknown work subcommand 'dance'/],
      ["work submit bar", /requires a target node and work type/],
      ["work status", /requires a unit ID/],
      ["work cancel a b", /does not take parameters after the unit ID/],
      ["work results a b c", /only takes a unit ID and optional start position/],
      ["work results a -1", /start position/],
      ['{"command":"work","subcommand":"submit","node":"a","worktype":1}', /must all be strings/],
      ['{"command":"work","subcommand":"submit","worktype":"a"}', /field node missing/],
      [
        '{"command":"work","subcommand":"submit","node":"a","worktype":"b","signwork":"yes"}',
        /bool/,
      ],
      ['{"command":"work","subcommand":"results","unitid":"a"}', /startpos missing/],
      ['{"command":"work","subcommand":"status"}', /field unitid missing/],
    ];
    for (const [line, message] of bad) {
      assert.throws(
        () => parseRequest(line),
        (e: unknown) => {
          assert.ok(e instanceof ProtocolError, line);
          assert.match((e as Error).message, message, line);
          return true;
        },
      );
    }
  });
});

describe("control protocol: replies", () => {
  it("writes JSON as Go's encoding/json writes a map", () => {
    assert.equal(
      goJson({ unitid: "a", result: "Job Started" }),
      '{"result":"Job Started","unitid":"a"}',
    );
    assert.equal(
      goJson({ b: { z: 1, a: 2 }, a: "<&>" }, 1),
      '{"a":"\\u003c\\u0026\\u003e","b":{"z":1,"a":2}}',
    );
    assert.equal(goJson({ b: { z: 1, a: 2 } }, 2), '{"b":{"a":2,"z":1}}');
  });

  it("writes durations as Go does", () => {
    assert.equal(goDuration(0), "0s");
    assert.equal(goDuration(850), "850ns");
    assert.equal(goDuration(1_500), "1.5µs");
    assert.equal(goDuration(2_301_000), "2.301ms");
    assert.equal(goDuration(1_500_000_000), "1.5s");
    assert.equal(goDuration(90_000_000_000), "1m30s");
  });
});
