// Chrome DevTools' own heap snapshot code (npm heap-snapshot-toolkit):
// parse, retained sizes, class summary. Prints the top class by retained size.
import { createReadStream } from 'node:fs';
import { parse } from 'heap-snapshot-toolkit';

const snapshot = await parse(createReadStream(process.argv[2], 'utf-8'));
const classes = Object.values(snapshot.aggregatesWithFilter({}));
classes.sort((a, b) => b.maxRet - a.maxRet);
console.log(JSON.stringify({ classes: classes.length, top: classes[0].name, topRetained: classes[0].maxRet }));
