// The three-way merge of sorted streams: the archive, the home and the storage, each in name order
// (byte order), read side by side so that every name is seen once with its three entries and nothing
// else is held. A stream out of order is refused, never guessed at: a name missing from one side by
// mistake would read as a deletion.
import { TabulaError } from '../../common/errors';
import { compareNames } from './listing';
import type { Entry } from './tree';

/** An entry of a listing; 'unreadable' for a file this user may not read (neither copied nor deleted). */
export type Listed = Entry | 'unreadable';

export type Batches<T> = AsyncIterator<[string, T][]> | Iterator<[string, T][]>;

export class Cursor<T> {
  private batch: [string, T][] = [];
  private i = 0;
  private done = false;
  private last: string | null = null;
  constructor(
    private readonly source: Batches<T>,
    private readonly what: string,
  ) {}
  /** Refills from the source when the batch is used up (the only await, once per batch). */
  async fill(): Promise<void> {
    while (this.i >= this.batch.length && !this.done) {
      const r = await this.source.next();
      if (r.done) this.done = true;
      else {
        this.batch = r.value;
        this.i = 0;
      }
    }
  }
  get empty() {
    return this.i >= this.batch.length && !this.done;
  }
  /** The current name, undefined at the end (after {@link fill}). */
  head(): [string, T] | undefined {
    return this.batch[this.i];
  }
  /** Moves on without checking the order (a side looked up, not merged: out of order only misses). */
  skip() {
    this.i++;
  }
  advance() {
    const name = this.batch[this.i]![0];
    if (this.last !== null && compareNames(this.last, name) >= 0) {
      throw new TabulaError('internal', `The ${this.what} is not in name order (${JSON.stringify(this.last)} before ${JSON.stringify(name)}); nothing was changed.`);
    }
    this.last = name;
    this.i++;
  }
}

/**
 * Calls `visit` once per name found in any of the three, in name order, with each side's entry. The
 * visitor may be async only where it must be (rarely): its result is awaited when it is a promise.
 */
export async function mergeSorted<A, L, R>(
  archive: Batches<A>,
  local: Batches<L>,
  remote: Batches<R>,
  visit: (name: string, a: A | undefined, l: L | undefined, r: R | undefined) => void | Promise<void>,
): Promise<void> {
  const ca = new Cursor(archive, 'archive');
  const cl = new Cursor(local, "home's listing");
  const cr = new Cursor(remote, "storage's listing");
  for (;;) {
    if (ca.empty) await ca.fill();
    if (cl.empty) await cl.fill();
    if (cr.empty) await cr.fill();
    const [ha, hl, hr] = [ca.head(), cl.head(), cr.head()];
    if (!ha && !hl && !hr) return;
    let name = (ha ?? hl ?? hr)![0];
    if (hl && compareNames(hl[0], name) < 0) name = hl[0];
    if (hr && compareNames(hr[0], name) < 0) name = hr[0];
    const a = ha && ha[0] === name ? (ca.advance(), ha[1]) : undefined;
    const l = hl && hl[0] === name ? (cl.advance(), hl[1]) : undefined;
    const r = hr && hr[0] === name ? (cr.advance(), hr[1]) : undefined;
    const pending = visit(name, a, l, r);
    if (pending) await pending;
  }
}

/** Batches of a whole sorted array (tests, and small in-memory sides). */
export function* batchesOf<T>(entries: [string, T][], size = 512): Generator<[string, T][]> {
  for (let i = 0; i < entries.length; i += size) yield entries.slice(i, i + size);
}
