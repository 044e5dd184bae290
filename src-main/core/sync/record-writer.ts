// Records written to a file through one fixed buffer, each copied in as it comes. Not a string built
// with +=: such a string keeps a reference to every piece, and a name cut from a listing keeps the
// whole 16 KiB chunk it was decoded from alive (V8 slices strings instead of copying them). A 1% run's
// names to push, one every hundred files, so held 11 MiB of chunks until the list was flushed.
import fs from 'node:fs';

const SIZE = 1 << 16;

export function createRecordWriter(fd: number) {
  const buf = Buffer.allocUnsafe(SIZE);
  let used = 0;
  const flush = () => {
    if (used) fs.writeSync(fd, buf, 0, used);
    used = 0;
  };
  return {
    write(rec: string) {
      // A UTF-16 code unit takes at most 3 bytes in UTF-8: what may not fit is flushed first.
      if (used + rec.length * 3 > SIZE) {
        flush();
        if (rec.length * 3 > SIZE) return void fs.writeSync(fd, rec);
      }
      used += buf.write(rec, used);
    },
    flush,
  };
}
