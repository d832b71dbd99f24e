import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readClassList, writeClassList } from '../src/data/classes.ts';
import { writeManifest } from '../src/data/manifest.ts';
import { checkImagesExist, detectFormat, labelIndices, readDataset } from '../src/data/readers.ts';
import { RetformerError } from '../src/util/errors.ts';
import { makeTmpDir } from './helpers/data-fixtures.ts';

const tmp = makeTmpDir();
after(tmp.cleanup);
let n = 0;
/** Write `text` to a fresh sub-folder of the temp dir and return the file path. */
function file(name: string, text: string): string {
  const dir = join(tmp.dir, `case${n++}`);
  mkdirSync(dir, { recursive: true });
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
/** Assert that fn throws a one-line RetformerError matching re. */
function throwsOneLine(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RetformerError, `expected RetformerError, got ${e}`);
    assert.ok(!e.message.includes('\n'), `multi-line message: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

describe('CSV manifests', () => {
  it('resolves relative paths against the CSV folder, keeps absolute ones, reads optional columns', () => {
    const csv = file('m.csv', 'path,label,text,split,clean_label\na/x.png,dog,"a dog, brown",train,cat\n/abs/y.jpg,cat,,test,\n');
    const ds = readDataset(csv);
    assert.deepEqual(ds.classes, ['cat', 'dog']);
    assert.equal(ds.samples[0].path, join(csv, '..', 'a', 'x.png'));
    assert.equal(ds.samples[0].text, 'a dog, brown');
    assert.equal(ds.samples[0].split, 'train');
    assert.equal(ds.samples[0].cleanLabel, 'cat');
    assert.equal(ds.samples[0].row, 2); // the line an editor shows: the header is line 1
    assert.equal(ds.samples[1].path, '/abs/y.jpg');
    assert.equal(ds.samples[1].text, undefined);
    assert.equal(ds.samples[1].cleanLabel, undefined);
    assert.equal(ds.samples[1].row, 3);
  });

  it('orders integer labels numerically and names alphabetically; a class list fixes the order', () => {
    const ints = readDataset(file('i.csv', 'path,label\na,10\nb,2\nc,1\n'));
    assert.deepEqual(ints.classes, ['1', '2', '10']);
    const names = readDataset(file('n.csv', 'path,label\na,b10\nb,b2\nc,a\n'));
    assert.deepEqual(names.classes, ['a', 'b10', 'b2']);
    const withClean = readDataset(file('k.csv', 'path,label,clean_label\na,x,w\nb,x,\n'));
    assert.deepEqual(withClean.classes, ['w', 'x'], 'clean labels are classes too');
    const fixed = readDataset(file('f.csv', 'path,label\na,x\nb,y\n'), { classes: ['y', 'z', 'x'] });
    assert.deepEqual(fixed.classes, ['y', 'z', 'x']);
    assert.deepEqual([...labelIndices(fixed)], [2, 0]);
  });

  it('reads the class order from a class-list file', () => {
    const list = file('classes.txt', 'zebra\n\n  ant  \n');
    const csv = join(list, '..', 'm.csv');
    writeFileSync(csv, 'path,label\np,ant\nq,zebra\n');
    assert.deepEqual(readDataset(csv, { classes: list }).classes, ['zebra', 'ant']);
  });

  it('gives one-line errors naming file and line as an editor counts them (header = line 1)', () => {
    const unknown = file('u.csv', 'path,label\na,x\nb,q\n');
    throwsOneLine(() => readDataset(unknown, { classes: ['x'] }), new RegExp(`^${unknown}:3: unknown label "q"`));
    throwsOneLine(() => readDataset(join(tmp.dir, 'nope.csv')), /nope\.csv: file not found/);
    throwsOneLine(() => readDataset(file('e.csv', '')), /e\.csv: empty CSV/);
    throwsOneLine(() => readDataset(file('c.csv', 'path,name\na,b\n')), /c\.csv:1: missing column "label"/);
    const emptyPath = file('p.csv', 'path,label\na,x\n ,y\n');
    throwsOneLine(() => readDataset(emptyPath), new RegExp(`^${emptyPath}:3: empty path`));
    const emptyLabel = file('l.csv', 'path,label\na,\n');
    throwsOneLine(() => readDataset(emptyLabel), new RegExp(`^${emptyLabel}:2: empty label`));
    const dupList = file('dup.txt', 'a\nb\na\n');
    throwsOneLine(() => readClassList(dupList), new RegExp(`^${dupList}:3: duplicate class "a"`));
  });

  it('counts lines as an editor does: blank lines and quoted newlines (LF or CRLF) move later records down', () => {
    // line 1 header, line 2-3 one record (quoted newline in its text), line 4 blank, line 5 the bad record
    const lf = file('lf.csv', 'path,label,text\na.png,x,"two\nlines"\n\nb.png,y\n');
    throwsOneLine(() => readDataset(lf), new RegExp(`^${lf}:5: malformed CSV`));
    const labels = file('lines.csv', 'path,label,text\na.png,x,"two\nlines"\n\nb.png,q,one\n"c\n.png",x,\nd.png,q,"three\r\nline\r\ntext"\ne.png,q,\n');
    assert.deepEqual(
      readDataset(labels).samples.map((s) => s.row),
      [2, 5, 6, 8, 11],
    );
    throwsOneLine(() => readDataset(labels, { classes: ['x'] }), new RegExp(`^${labels}:5: unknown label "q"`));
    const crlf = file('crlf.csv', 'path,label,text\r\na.png,x,"two\r\nlines"\r\nb.png,,t\r\n');
    throwsOneLine(() => readDataset(crlf), new RegExp(`^${crlf}:4: empty label`));
  });

  it('refuses a label with a control character (a quoted newline, a tab) naming file and line', () => {
    const newline = file('nl.csv', 'path,label\na.png,cat\nb.png,"bird\nsong"\n');
    throwsOneLine(() => readDataset(newline), new RegExp(`^${newline}:3: label "bird\\\\nsong" contains a control character \\(newline at character 5\\)`));
    const tab = file('tab.csv', 'path,label\na.png,"c\tat"\n');
    throwsOneLine(() => readDataset(tab), new RegExp(`^${tab}:2: label "c\\\\tat" contains a control character \\(tab`));
    const nel = file('nel.csv', 'path,label,clean_label\na.png,cat,ca\u0085t\n');
    throwsOneLine(() => readDataset(nel), new RegExp(`^${nel}:2: clean_label "ca\\\\u0085t" contains a control character \\(U\\+0085`));
    const list = file('classes.txt', 'cat\nd\u0001og\n');
    throwsOneLine(() => readClassList(list), new RegExp(`^${list}:2: class "d\\\\u0001og" contains a control character`));
    const lift = file('split.txt', 'a.png 1\nb.png x\u0007y\n');
    throwsOneLine(() => readDataset(lift), new RegExp(`^${lift}:2: label "x\\\\u0007y" contains a control character`));
    // an image folder whose class folder name holds a newline
    const root = join(tmp.dir, 'ctl-folder');
    mkdirSync(join(root, 'bad\nname'), { recursive: true });
    writeFileSync(join(root, 'bad\nname', 'x.png'), '');
    throwsOneLine(() => readDataset(root), new RegExp(`^${root}: class folder "bad\\\\nname" contains a control character \\(newline`));
    // printable unicode is fine
    assert.deepEqual(readDataset(file('ok.csv', 'path,label\na.png,chat noir 🐈\n')).classes, ['chat noir 🐈']);
  });

  it('reads manifests whose pictures are absent; checkImagesExist names the first missing row and counts the rest', () => {
    const csv = file('m.csv', 'path,label\nhere.png,x\ngone.png,x\nalso-gone.png,y\n');
    writeFileSync(join(csv, '..', 'here.png'), 'not really a png');
    const dataset = readDataset(csv);
    assert.equal(dataset.samples.length, 3);
    throwsOneLine(() => checkImagesExist(dataset), new RegExp(`^${csv}:3: image not found: .*gone\\.png \\(and 1 more missing\\)$`));
    checkImagesExist({ ...dataset, samples: dataset.samples.slice(0, 1) });
  });
});

describe('image folders', () => {
  it('reads root/<label>/<file> with image extensions only, sorted, recursing inside a class', () => {
    const root = join(tmp.dir, 'folder');
    for (const [p, body] of [
      ['b/2.JPG', 'x'],
      ['b/1.png', 'x'],
      ['a/sub/3.webp', 'x'],
      ['a/notes.txt', 'x'],
      ['a/.hidden.png', 'x'],
    ] as const) {
      mkdirSync(join(root, p, '..'), { recursive: true });
      writeFileSync(join(root, p), body);
    }
    writeFileSync(join(root, 'loose.png'), 'x');
    assert.equal(detectFormat(root), 'folder');
    const ds = readDataset(root);
    assert.deepEqual(ds.classes, ['a', 'b']);
    assert.deepEqual(
      ds.samples.map((s) => [s.label, s.path.slice(root.length + 1)]),
      [
        ['a', 'a/sub/3.webp'],
        ['b', 'b/1.png'],
        ['b', 'b/2.JPG'],
      ],
    );
    throwsOneLine(() => readDataset(root, { classes: ['b'] }), /unknown label "a"/);
  });

  it('refuses a folder without images', () => {
    const empty = join(tmp.dir, 'emptyfolder', 'cls');
    mkdirSync(empty, { recursive: true });
    throwsOneLine(() => readDataset(join(empty, '..')), /no images found/);
  });
});

describe('LIFT split files', () => {
  it('reads "path int" lines relative to the file (or --root), ints kept as strings in numeric order', () => {
    const txt = file('train.txt', 'train/n01/a b.jpg 10\n\ntrain/n02/c.jpg 2\n');
    assert.equal(detectFormat(txt), 'lift');
    const ds = readDataset(txt);
    assert.deepEqual(ds.classes, ['2', '10']);
    assert.equal(ds.samples[0].path, join(txt, '..', 'train/n01/a b.jpg'));
    assert.equal(ds.samples[1].row, 3);
    const rooted = readDataset(txt, { root: tmp.dir });
    assert.equal(rooted.samples[1].path, join(tmp.dir, 'train/n02/c.jpg'));
  });

  it('maps int labels to a class-name list by index, and reports labels out of range', () => {
    const txt = file('val.txt', 'x.jpg 1\ny.jpg 0\n');
    const ds = readDataset(txt, { classes: ['goldfish', 'shark'] });
    assert.deepEqual(
      ds.samples.map((s) => s.label),
      ['shark', 'goldfish'],
    );
    const bad = file('bad.txt', 'x.jpg 0\ny.jpg 5\n');
    throwsOneLine(() => readDataset(bad, { classes: ['a', 'b'] }), new RegExp(`^${bad}:2: unknown label "5"`));
    const malformed = file('m.txt', 'justapath\n');
    throwsOneLine(() => readDataset(malformed), new RegExp(`^${malformed}:1: expected`));
  });
});

describe('writing', () => {
  it('writeManifest writes paths relative to the output folder and round-trips', () => {
    const src = readDataset(file('in.csv', 'path,label,text,clean_label\nimgs/a.png,x,hello,y\n/abs/b.png,y,,\n'));
    const out = join(tmp.dir, 'out', 'deeper', 'o.csv');
    writeManifest(out, src.samples);
    const text = readFileSync(out, 'utf8');
    assert.match(text, /^path,label,text,clean_label\n/);
    assert.ok(text.includes('../../'), text);
    const back = readDataset(out);
    assert.deepEqual(
      back.samples.map((s) => [s.path, s.label, s.text, s.cleanLabel]),
      src.samples.map((s) => [s.path, s.label, s.text, s.cleanLabel]),
    );
  });

  it('class lists round-trip and refuse names that cannot be one line', () => {
    const p = join(tmp.dir, 'lists', 'classes.txt');
    writeClassList(p, ['b', 'a c', '10']);
    assert.deepEqual(readClassList(p), ['b', 'a c', '10']);
    throwsOneLine(() => writeClassList(p, ['ok', 'bad\nname']), /cannot be written/);
  });
});
