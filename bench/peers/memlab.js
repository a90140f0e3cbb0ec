// memlab: load the snapshot with dominators and retained sizes, then the
// class summary (retained size summed per class name, as memlab reports it).
'use strict';
const { getFullHeapFromFile } = require('@memlab/heap-analysis');

(async () => {
  const heap = await getFullHeapFromFile(process.argv[2]);
  const byClass = new Map();
  heap.nodes.forEach((node) => {
    const entry = byClass.get(node.name) || { count: 0, retained: 0 };
    entry.count++;
    entry.retained += node.retainedSize;
    byClass.set(node.name, entry);
  });
  const top = [...byClass].sort((a, b) => b[1].retained - a[1].retained)[0];
  console.log(JSON.stringify({ classes: byClass.size, top: top[0] }));
})();
