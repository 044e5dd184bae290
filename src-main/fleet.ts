// tabula-fleet: the publisher side. Everything it writes is static files that any web server,
// rsync module or CDN can serve (see fleet-publish.ts for the layout).
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from './common/errors';
import { z } from 'zod';
import { readJsonDocument, writeFileAtomic } from './core/atomic-file';
import { parsePolicy } from './core/image/policy';
import { newNonce, publishOstree, publishRsyncTree, refreshChannel, writePolicy, writeSigned, writeSummary } from './fleet-publish';
import { generateKeyPair, publicKeyOf } from './core/signing';

const usage = `Usage:
  tabula-fleet keygen --out NAME
      writes NAME.key (secret, mode 600) and NAME.pub. Keys have roles: the image key's .pub goes
      into the image config under fleet.trustedKeys (manifests, channels, policy), the command
      key's under fleet.commandKeys (reimage, pull, diagnostics). Use two keys.
  tabula-fleet publish --backend rsync-tree --tree DIR --version V --channel C --key NAME.key --out SERVERDIR
                       [--valid-for 7d]
  tabula-fleet publish --backend ostree --tree DIR --version V --channel C --key NAME.key --out SERVERDIR
                       --gpg-key KEYID [--gpg-homedir DIR] [--ref tabula/stable/x86_64] [--valid-for 7d]
      (ostree commits and summary are GPG-signed: Debian's ostree has no ed25519 \`ostree sign\`)
  tabula-fleet refresh --channel C --key NAME.key --out SERVERDIR [--valid-for 7d]
                       [--gpg-key KEYID [--gpg-homedir DIR]]   (also the ostree summary)
      re-signs the channel (and summary) with a new serial and expiry: run it well before
      --valid-for runs out, or machines report "Update server data is out of date".
  tabula-fleet sign-policy --policy FILE --key NAME.key --out SERVERDIR [--valid-for 7d]
      FILE: {"format":"tabula-policy-1","channel":"stable","checkIntervalHours":6,"windowMinutes":60,
             "classes":{"lab":{"channel":"beta","pin":"2.3"}}}
      serial and expires are added when signing. "pin" names the version to install, even an
      older one: the only way machines go back.
  tabula-fleet command reimage|pull|diagnostics --machine MACHINE-ID [--mac MAC] --expires DURATION
                       --key NAME.key --out SERVERDIR [--override-unsynced]
      DURATION: 30m, 2h, 1d. Writes commands/MACHINE-ID.json(.sig); a new command replaces the old.`;

export function parseDuration(text: string): number {
  const m = /^(\d+)(m|h|d)$/.exec(text);
  if (!m) throw new TabulaError('invalid-argument', `"${text}" is not a duration (examples: 30m, 2h, 1d).`);
  const ms = Number(m[1]) * { m: 60_000, h: 3600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  if (ms <= 0 || ms > 30 * 86_400_000) throw new TabulaError('invalid-argument', 'A command may be valid for 1 minute to 30 days.');
  return ms;
}

/** How long published data stays valid: 1 hour to a year (default 7 days). */
export function parseValidity(text: string | undefined): number {
  if (text === undefined) return 7 * 86_400_000;
  const m = /^(\d+)(h|d)$/.exec(text);
  const ms = m ? Number(m[1]) * { h: 3600_000, d: 86_400_000 }[m[2] as 'h' | 'd'] : 0;
  if (ms < 3600_000 || ms > 366 * 86_400_000) throw new TabulaError('invalid-argument', `"${text}" is not a validity between 1h and 366d (examples: 12h, 7d).`);
  return ms;
}

function options(argv: string[]) {
  const opts = new Map<string, string>();
  const flags = new Set<string>();
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--override-unsynced') flags.add(a);
    else if (a.startsWith('--')) {
      const v = argv[++i];
      if (v === undefined) throw new TabulaError('invalid-argument', `${a} needs a value.`);
      opts.set(a.slice(2), v);
    } else words.push(a);
  }
  const need = (k: string) => {
    const v = opts.get(k);
    if (!v) throw new TabulaError('invalid-argument', `--${k} is required.\n\n${usage}`);
    return v;
  };
  return { words, opts, flags, need };
}

const readKey = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TabulaError('invalid-argument', `The key ${file} cannot be read (${(err as NodeJS.ErrnoException).code}).`);
  }
};

export function runFleet(argv: string[], now = () => new Date()): string {
  const { words, opts, flags, need } = options(argv);
  switch (words[0]) {
    case 'keygen': {
      const out = need('out');
      if (fs.existsSync(`${out}.key`)) throw new TabulaError('invalid-argument', `${out}.key exists already; refusing to overwrite a signing key.`);
      const k = generateKeyPair();
      writeFileAtomic(`${out}.key`, k.privateKeyPem, 0o600);
      writeFileAtomic(`${out}.pub`, k.publicKey + '\n');
      return `Wrote ${out}.key (keep it secret) and ${out}.pub. Put this in the image config under fleet.trustedKeys:\n  ${k.publicKey}`;
    }
    case 'publish': {
      const backend = need('backend');
      const base = { treeDir: path.resolve(need('tree')), outDir: path.resolve(need('out')), version: need('version'), channel: need('channel'), privateKeyPem: readKey(need('key')), validForMs: parseValidity(opts.get('valid-for')), now: now() };
      if (!fs.statSync(base.treeDir, { throwIfNoEntry: false })?.isDirectory()) throw new TabulaError('invalid-argument', `${base.treeDir} is not a folder.`);
      fs.mkdirSync(path.join(base.outDir, 'images'), { recursive: true });
      if (backend === 'rsync-tree') {
        const r = publishRsyncTree(base);
        return `Published ${base.version} on channel ${base.channel}: ${r.files} files, ${r.bytes} bytes, manifest signed by ${publicKeyOf(base.privateKeyPem)}.`;
      }
      if (backend === 'ostree') {
        const r = publishOstree({ ...base, ref: opts.get('ref') ?? 'tabula/stable/x86_64', gpg: { keyId: need('gpg-key'), homedir: opts.get('gpg-homedir') ?? path.join(process.env.HOME ?? '/root', '.gnupg') } });
        return `Committed ${base.version} as ${r.commit} (GPG-signed), summary updated and signed.`;
      }
      throw new TabulaError('invalid-argument', `--backend must be ostree or rsync-tree, not "${backend}".`);
    }
    case 'refresh': {
      const outDir = path.resolve(need('out'));
      const f = { validForMs: parseValidity(opts.get('valid-for')), now: now() };
      const r = refreshChannel(outDir, need('channel'), readKey(need('key')), f);
      const lines = [`Channel ${need('channel')} re-signed: version ${r.version}, serial ${r.serial}, valid until ${r.expires}.`];
      const gpgKey = opts.get('gpg-key');
      if (gpgKey) {
        const s = writeSummary(path.join(outDir, 'repo'), { keyId: gpgKey, homedir: opts.get('gpg-homedir') ?? path.join(process.env.HOME ?? '/root', '.gnupg') }, f);
        lines.push(`ostree summary re-signed: serial ${s.serial}, valid until ${s.expires}.`);
      }
      return lines.join('\n');
    }
    case 'sign-policy': {
      const file = need('policy');
      const f = { validForMs: parseValidity(opts.get('valid-for')), now: now() };
      let json: Record<string, unknown>;
      try {
        // Read as every JSON input is: a regular file, size-capped, a problem named by place.
        const read = readJsonDocument(file, z.record(z.string(), z.unknown()));
        if (read.status === 'missing') throw new Error('does not exist.');
        if (read.status === 'invalid') throw new Error(`${read.problem}.`);
        json = read.value;
        // serial and expires are the publisher's to set: a stale copy of them is not carried over.
        delete json.serial;
        delete json.expires;
        parsePolicy(Buffer.from(JSON.stringify({ ...json, serial: 1, expires: new Date(f.now.getTime() + f.validForMs).toISOString() })));
      } catch (err) {
        throw new TabulaError('invalid-argument', `${file}: ${(err as Error).message} Nothing was signed.`);
      }
      const r = writePolicy(path.resolve(need('out')), json, readKey(need('key')), f);
      return `Wrote policy.json and policy.json.sig (serial ${r.serial}, valid until ${r.expires}).`;
    }
    case 'command': {
      const verb = words[1];
      if (verb !== 'reimage' && verb !== 'pull' && verb !== 'diagnostics') throw new TabulaError('invalid-argument', `command needs reimage, pull or diagnostics.\n\n${usage}`);
      const machineId = need('machine').toLowerCase();
      if (!/^[0-9a-f]{32}$/.test(machineId)) throw new TabulaError('invalid-argument', 'The machine id is the 32 hex digits of /etc/machine-id.');
      const mac = opts.get('mac')?.toLowerCase();
      if (mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) throw new TabulaError('invalid-argument', `"${mac}" is not a MAC address.`);
      const issued = now();
      const cmd = {
        format: 'tabula-command-1',
        machineId,
        ...(mac ? { mac } : {}),
        verb,
        nonce: newNonce(),
        issuedAt: issued.toISOString(),
        expiresAt: new Date(issued.getTime() + parseDuration(need('expires'))).toISOString(),
        ...(flags.has('--override-unsynced') ? { overrideUnsynced: true } : {}),
      };
      writeSigned(path.join(path.resolve(need('out')), 'commands', `${machineId}.json`), JSON.stringify(cmd, null, 1) + '\n', readKey(need('key')));
      return `Command ${verb} for ${machineId} (nonce ${cmd.nonce}) valid until ${cmd.expiresAt}.`;
    }
    default:
      throw new TabulaError('invalid-argument', usage);
  }
}

/** The process entry (bin/tabula-fleet.js). */
export function main(argv: string[]): void {
  try {
    console.log(runFleet(argv));
  } catch (err) {
    console.error(err instanceof TabulaError ? err.message : `tabula-fleet: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(err instanceof TabulaError && err.code === 'invalid-argument' ? 64 : 1);
  }
}
