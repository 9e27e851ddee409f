/**
 * `colony token create|list|revoke`: API tokens (needs an admin token; the CLI on the
 * server's machine finds the first admin token in the data dir by itself).
 */
import type { NewRole } from "../client/client.ts";
import { CLIENT_FLAGS_HELP } from "./client-options.ts";
import {
  ago,
  parseClientArgs,
  printJson,
  STD_IO,
  subcommands,
  withClient,
  type CliIo,
} from "./client-command.ts";
import { paint, table, UsageError } from "./output.ts";

const ROLES = ["reader", "writer", "admin", "ant"] as const;

export const TOKEN_HELP = `Usage: colony token <create|list|revoke> [options]

API tokens of a colony server. The server keeps only a hash of each token, so a new
token is shown once, when it is created. Needs an admin token.

  colony token create --role reader|writer|admin|ant [--name NAME]
      prints the new token alone on stdout (so TOKEN=$(colony token create ...) works)
      and how to use it on stderr
  colony token list
      every token (never the token itself): id, name, role, last use, revoked
  colony token revoke <id>
      the token stops working at once

Roles: reader reads everything; writer also submits, cancels and saves definitions;
admin also deletes definitions and manages tokens; ant only connects workers (/ws/ants).

Options:
  --json              print the server's JSON
  -h, --help          this help

${CLIENT_FLAGS_HELP}

Examples:
  colony token create --role writer --name ci
  colony token list
  colony token revoke tok_Ab12Cd34`;

export function tokenCommand(argv: string[], io: CliIo = STD_IO): Promise<number> {
  return subcommands(
    "token",
    argv,
    TOKEN_HELP,
    {
      create: (a) => create(a, io),
      list: (a) => list(a, io),
      ls: (a) => list(a, io),
      revoke: (a) => revoke(a, io),
    },
    io,
  );
}

function help(io: CliIo): number {
  io.stdout.write(TOKEN_HELP + "\n");
  return 0;
}

async function create(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {
    role: { type: "string" },
    name: { type: "string" },
  });
  if (values.help) return help(io);
  if (positionals.length > 0) throw new UsageError(`unexpected '${positionals[0]}'`);
  const role = values.role as NewRole | undefined;
  if (!role || !(ROLES as readonly string[]).includes(role))
    throw new UsageError(`--role must be one of ${ROLES.join(", ")}`);
  const name = values.name ?? `${role}-${new Date().toISOString().slice(0, 19)}`;
  return withClient("token create", values, io, async (client) => {
    const created = await client.createToken({ role, name });
    if (values.json) {
      printJson(io, created);
      return 0;
    }
    io.stdout.write(created.token + "\n");
    const p = paint(io.stderr);
    io.stderr.write(
      [
        "",
        `${p.bold(created.id)}: a ${created.role} token named '${created.name}'.`,
        p.yellow("This is the only time it is shown: the server keeps only its hash."),
        "Use it with (the token is the line above, on stdout):",
        "  export COLONY_TOKEN=<the token>",
        `  colony jobs list --server ${client.server}`,
        `  curl -H "Authorization: Bearer $COLONY_TOKEN" ${client.server}/api/job-requests`,
        `Revoke it with: colony token revoke ${created.id}`,
        "",
      ].join("\n"),
    );
    return 0;
  });
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  return withClient("token list", values, io, async (client) => {
    const items = await client.listTokens();
    if (values.json) {
      printJson(io, { items });
      return 0;
    }
    const rows = items.map((t) => [
      t.id,
      t.name,
      t.role,
      ago(t.created_at),
      ago(t.last_used_at),
      t.revoked_at ? paint(io.stdout).red(`revoked ${ago(t.revoked_at)}`) : "active",
    ]);
    io.stdout.write(table(rows, ["ID", "NAME", "ROLE", "CREATED", "LAST USED", "STATUS"]) + "\n");
    return 0;
  });
}

async function revoke(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  if (positionals.length !== 1) throw new UsageError("give the id of the token to revoke");
  return withClient("token revoke", values, io, async (client) => {
    const t = await client.revokeToken(positionals[0]!);
    if (values.json) printJson(io, t);
    else io.stdout.write(`${t.id} (${t.name}, ${t.role}): revoked\n`);
    return 0;
  });
}
