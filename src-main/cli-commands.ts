// The grammar of `tabula`: every command with its flags and a one-line usage, so that a typo is named
// in one line (exit 64, EX_USAGE) instead of a page of usage, and `tabula help CMD` shows just CMD.

export interface CommandSpec {
  /** The words that name it ("backup now"); "" for the flag-only modes. */
  name: string;
  usage: string;
  /** Flags without a value. */
  flags?: string[];
  /** Flags that take a value. */
  values?: string[];
  /** How many more words it takes (PATH, KEY VALUE…): [min, max]. */
  args?: [number, number];
  /** A value flag that must be given, with the values it takes. */
  required?: { flag: string; choices: string[] };
}

const json = ['--json'];
export const commands: CommandSpec[] = [
  { name: 'status', usage: 'tabula status [--json]                 image version, backup state and why', flags: json },
  { name: 'events', usage: 'tabula events                          follow the agent’s events (one JSON object a line)' },
  { name: 'backup now', usage: 'tabula backup now [--force] [--no-wait]   back up through the agent, following progress (exit 2 when refused for safety)', flags: ['--force', '--no-wait'] },
  { name: 'backup pause', usage: 'tabula backup pause [--json]           stop backing up until resumed', flags: json },
  { name: 'backup resume', usage: 'tabula backup resume [--json]          back up again', flags: json },
  { name: 'backup status', usage: 'tabula backup status [--json]          the same as tabula status', flags: json },
  { name: 'conflicts', usage: 'tabula conflicts [--json]              files changed here and elsewhere, waiting for a choice', flags: json },
  { name: 'conflicts resolve', usage: 'tabula conflicts resolve PATH --keep mine|theirs|both [--json]', values: ['--keep'], flags: json, args: [1, 1], required: { flag: '--keep', choices: ['mine', 'theirs', 'both'] } },
  { name: 'versions', usage: 'tabula versions PATH [--json]          older versions kept on the storage (exit 1 when none)', flags: json, args: [1, 1] },
  { name: 'restore', usage: 'tabula restore PATH [--at TIME] [--to DIR] [--json]   bring back an older version', values: ['--at', '--to'], flags: json, args: [1, 1] },
  {
    name: 'sync',
    usage: 'tabula sync [--dry-run] [--force] [--quick|--verify] [--home DIR] [--storage URL] [--json]   one two-way sync (by the running agent, else in this process), the storage listed in full (--verify, the default; --quick: trust its generation record, as the agent does between daily checks; exit 0 synced, 2 refused, 1 failed)',
    flags: ['--dry-run', '--force', '--quick', '--verify', '--json'],
    values: ['--home', '--storage'],
  },
  { name: 'prefs get', usage: 'tabula prefs get [KEY]                 show preferences (printers.default, printers.options, displays.profiles, network.profiles)', args: [0, 1] },
  { name: 'prefs set', usage: 'tabula prefs set KEY VALUE             set a preference (VALUE is JSON; printers.default also takes a URI)', args: [2, 2] },
  { name: 'prefs apply', usage: 'tabula prefs apply [--dry-run] [--only printers,displays,network] [--json]   apply now (exit 1 if anything was not applied)', flags: ['--dry-run', '--json'], values: ['--only'] },
  { name: 'prefs export', usage: 'tabula prefs export [FILE]             write your preferences as JSON (stdout without FILE)', args: [0, 1] },
  { name: 'prefs import', usage: 'tabula prefs import FILE|-             replace your preferences with an exported file', args: [1, 1] },
  { name: 'prefs secret', usage: 'tabula prefs secret NAME               save the password or key of network profile NAME (from stdin)', args: [1, 1] },
  { name: 'image status', usage: 'tabula image status [--json]           booted, staged, available and rollback versions, next check', flags: json },
  { name: 'image check', usage: 'tabula image check [--json]            ask the fleet server now', flags: json },
  { name: 'image pull', usage: 'tabula image pull [--json]             download, verify and stage the available version', flags: json },
  { name: 'image rollback', usage: 'tabula image rollback [--json]         make the previous version the next boot', flags: json },
  { name: 'fleet poll', usage: 'tabula fleet poll [--json]             fetch and run this machine’s signed fleet command now', flags: json },
  { name: 'help', usage: 'tabula help [COMMAND]                  this list, or one command’s usage', args: [0, 2] },
  { name: 'agent', usage: 'tabula agent [--port N]                run the agent in the foreground (what the user service runs)', values: ['--port'] },
  { name: '--headless', usage: 'tabula --headless [--port N]           print the window’s address, starting an agent when none runs', values: ['--port'] },
  { name: 'tray', usage: 'tabula tray                            the tray icon and window (needs the Electron runtime)' },
  { name: '--launch', usage: 'tabula --launch [--port N]             start the tray app (headless where Electron is missing)', values: ['--port'] },
  { name: '--version', usage: 'tabula --version' },
];

export function usageText(): string {
  return `Usage:\n${commands.map((c) => `  ${c.usage}`).join('\n')}`;
}

/** The command named by argv (longest match of its leading words), or a one-line complaint. */
export function matchCommand(argv: string[]): { spec: CommandSpec; rest: string[] } | { error: string } {
  const words: string[] = [];
  for (const a of argv) {
    if (a.startsWith('-')) break;
    words.push(a);
  }
  const modes = commands.filter((c) => c.name.startsWith('--') && argv.includes(c.name));
  if (modes.length && !words.length) return check(modes[0]!, argv, argv);
  if (!words.length) return { error: argv.length ? `Unknown option ${argv[0]}. Try \`tabula help\`.` : '' };
  for (const n of [2, 1]) {
    const name = words.slice(0, n).join(' ');
    const spec = commands.find((c) => c.name === name);
    if (spec && words.length >= n) return check(spec, argv, argv.slice(n));
  }
  const group = commands.filter((c) => c.name.startsWith(words[0] + ' '));
  if (group.length) {
    const subs = group.map((c) => c.name.split(' ')[1]).join('|');
    return { error: words[1] ? `Unknown command "tabula ${words[0]} ${words[1]}": use ${words[0]} ${subs}.` : `tabula ${words[0]} needs one of: ${subs}.` };
  }
  return { error: `Unknown command "${words[0]}". Try \`tabula help\`.` };
}

function check(spec: CommandSpec, argv: string[], rest: string[]): { spec: CommandSpec; rest: string[] } | { error: string } {
  const free: string[] = [];
  const names = spec.name.startsWith('--') ? [spec.name] : [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (names.includes(a) || a === '--help') continue;
    if (spec.values?.includes(a)) {
      if (rest[i + 1] === undefined) return { error: `${a} needs a value (usage: ${short(spec)}).` };
      i++;
    } else if (spec.flags?.includes(a)) continue;
    else if (a.startsWith('-') && a !== '-') return { error: `tabula ${spec.name.replace(/^--/, '--')} has no option ${a} (usage: ${short(spec)}).` };
    else free.push(a);
  }
  if (spec.required) {
    const { flag, choices } = spec.required;
    const at = rest.lastIndexOf(flag);
    const given = at >= 0 ? rest[at + 1] : undefined;
    const list = `${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`;
    if (given === undefined) return { error: `${flag} is needed: ${list} (usage: ${short(spec)}).` };
    if (!choices.includes(given)) return { error: `${flag} takes ${list}, not "${given.slice(0, 40)}" (usage: ${short(spec)}).` };
  }
  const [min, max] = spec.args ?? [0, 0];
  if (free.length < min) return { error: `Missing ${min - free.length === 1 ? 'an argument' : 'arguments'} (usage: ${short(spec)}).` };
  if (free.length > max) return { error: `Unexpected "${free[max]}" (usage: ${short(spec)}).` };
  void argv;
  return { spec, rest: free };
}

const short = (spec: CommandSpec) => spec.usage.split(/\s{3,}/)[0]!.trim();

/** `tabula help [CMD]`: one command's usage (or the group's), or everything. */
export function helpFor(words: string[]): string | null {
  if (!words.length) return usageText();
  const name = words.join(' ');
  const found = commands.filter((c) => c.name === name || c.name.startsWith(name + ' ') || c.name === `--${name}`);
  return found.length ? `Usage:\n${found.map((c) => `  ${c.usage}`).join('\n')}` : null;
}
