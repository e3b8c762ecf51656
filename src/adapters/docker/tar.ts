/**
 * A POSIX ustar archive of plain files, in memory: what Docker's archive API
 * (PUT /containers/{id}/archive) takes to write files into a container. Names
 * are relative to the directory the archive is extracted in; owner root.
 */
export function tarOf(files: readonly { name: string; content: Buffer; mode: number }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const file of files) {
    if (Buffer.byteLength(file.name) > 100) throw new Error(`tar: name longer than 100 bytes: ${file.name}`);
    const header = Buffer.alloc(512);
    header.write(file.name, 0, 100, 'utf8');
    header.write(octal(file.mode, 8), 100);
    header.write(octal(0, 8), 108); // uid
    header.write(octal(0, 8), 116); // gid
    header.write(octal(file.content.length, 12), 124);
    header.write(octal(0, 12), 136); // mtime
    header.fill(' ', 148, 156); // checksum field counts as spaces while summing
    header.write('0', 156); // regular file
    header.write('ustar\u000000', 257, 'binary');
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'binary');
    blocks.push(header, file.content, Buffer.alloc((512 - (file.content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** `width - 1` octal digits and a NUL, as ustar numeric fields are. */
function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\u0000`;
}
