// storage.sshOptions is an allow-list read the way ssh's getopt reads it (issue 12 item 9).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkSshOptions, parseStorageUrl, sshArgs } from '../../src-main/core/storage-url';

describe('ssh options allow-list', () => {
  it('accepts what says how to reach and trust the storage', () => {
    for (const ok of [
      ['-i', '/home/ann/.ssh/id_ed25519'],
      ['-i/home/ann/.ssh/id_ed25519', '-p2222'],
      ['-o', 'UserKnownHostsFile=/etc/tabula/known_hosts', '-o', 'StrictHostKeyChecking=yes'],
      ['-oIdentitiesOnly=yes', '-o', 'identityfile=~/.ssh/nas_%u'],
      ['-o', 'IdentityFile /home/ann/.ssh/k'], // ssh's "Key Value" spelling
      ['-F', '/dev/null', '-4', '-C', '-o', 'BatchMode=yes'],
      ['-4Ci', '/k'],
    ])
      expect([ok, checkSshOptions(ok)]).toEqual([ok, null]);
  });

  it('refuses every spelling of a command, another config file, or a smuggled option', () => {
    const refused: [string[], RegExp][] = [
      [['-oProxyCommand=touch /tmp/x'], /not one plain word/],
      [['-oProxyCommand=nc'], /-o ProxyCommand is not allowed/],
      [['-o', 'ProxyCommand=nc'], /ProxyCommand is not allowed/],
      [['-o', 'proxycommand nc'], /proxycommand is not allowed/],
      [['-o', 'PROXYCOMMAND=nc'], /not allowed/],
      [['-o', 'ProxyJump=evil'], /not allowed/],
      [['-o', 'LocalCommand=id'], /not allowed/],
      [['-o', 'PermitLocalCommand=yes'], /not allowed/],
      [['-o', 'KnownHostsCommand=id'], /not allowed/],
      [['-o', 'Match=exec'], /not allowed/],
      [['-o', 'Include=/tmp/evil'], /not allowed/],
      [['-o', 'ControlPath=/tmp/evil'], /not allowed/],
      [['-4oProxyCommand=nc'], /ProxyCommand is not allowed/],
      [['-Co', 'ProxyCommand=nc'], /ProxyCommand is not allowed/],
      [['-F', '/tmp/evil_config'], /-F may only be/],
      [['-F/tmp/evil'], /-F may only be/],
      [['-i', '-oProxyCommand=nc'], /not one plain word/],
      [['-i', '/k\nProxyCommand nc'], /not one plain word/],
      [['-o', 'IdentityFile=/k ProxyCommand=nc'], /not one plain word/],
      [['-o', 'IdentityFile="/k"'], /not one plain word/],
      [['-o', 'BatchMode=ProxyCommand=nc'], /carries another option/],
      [['-o'], /needs a value/],
      [['-L', '8080:127.0.0.1:80'], /-L is not allowed/],
      [['-W', 'h:22'], /-W is not allowed/],
      [['-J', 'evil'], /-J is not allowed/],
      [['-E', '/tmp/log'], /-E is not allowed/],
      [['evil.example', 'touch x'], /not an ssh option/],
      [['--', 'x'], /not an ssh option/],
      [['-p', '22;id'], /not one plain word/],
      [['-p', '0'], /port number/],
    ];
    for (const [opts, why] of refused) expect([opts, checkSshOptions(opts)]).toEqual([opts, expect.stringMatching(why)]);
  });

  it('what it accepts, the real ssh parses as options (no host, no command smuggled)', () => {
    // ssh -G prints the resolved configuration without connecting: nothing may name a command.
    const opts = ['-4Ci', '/k', '-o', 'IdentityFile /k2', '-p2222', '-F', '/dev/null', '-o', 'StrictHostKeyChecking=yes'];
    expect(checkSshOptions(opts)).toBeNull();
    const r = spawnSync('ssh', ['-G', ...opts, 'storage.example'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^hostname storage\.example$/m);
    expect(r.stdout).toMatch(/^port 2222$/m);
    expect(r.stdout).not.toMatch(/^(proxycommand|localcommand|permitlocalcommand yes)/m);
  });
});

describe('the cipher ssh uses for the storage', () => {
  const storage = parseStorageUrl('ssh://ann@nas.example:2222/srv/ann');
  const firstCipher = (args: string[]) => /^ciphers ([^,\n]+)/m.exec(spawnSync('ssh', ['-G', ...args, 'ann@nas.example'], { encoding: 'utf8' }).stdout)?.[1];
  const aes = /^(flags|Features)\s*:.*\baes\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));

  it('is AES-GCM first on a processor with AES instructions when the configuration leaves the ciphers alone', () => {
    const args = sshArgs(storage, ['-F', '/dev/null'], 10);
    expect(firstCipher(args)).toBe(aes ? 'aes128-gcm@openssh.com' : 'chacha20-poly1305@openssh.com');
  });

  it("is the configuration's own when it names ciphers: a config file or the storage's options", () => {
    const conf = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-ssh-')), 'config');
    fs.writeFileSync(conf, 'Host *\n  Ciphers chacha20-poly1305@openssh.com,aes256-ctr\n');
    expect(sshArgs(storage, ['-F', conf], 10).join(' ')).not.toMatch(/Ciphers/);
    expect(firstCipher(sshArgs(storage, ['-F', conf], 10))).toBe('chacha20-poly1305@openssh.com');
    const own = sshArgs(storage, ['-F', '/dev/null', '-o', 'Ciphers=aes256-ctr'], 10);
    expect(firstCipher(own)).toBe('aes256-ctr');
    expect(own.filter((a) => a.startsWith('Ciphers='))).toEqual(['Ciphers=aes256-ctr']);
    fs.rmSync(path.dirname(conf), { recursive: true });
  });
});
