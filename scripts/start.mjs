#!/usr/bin/env node
// `npm start` will run node-core's embedded dev network (`node-core dev`)
// once node-core exists (issue #9). Until then, say so plainly.
console.log(
  'Mycelium node-core is not built yet: its CLI and the embedded dev network arrive with issue #9.\n' +
    'What works today: `npm test` (the whole suite) and `npx nx run-many -t build`.'
)
