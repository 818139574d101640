// The built-in pause image of mast cri: does nothing until it is stopped,
// then exits 0, like registry.k8s.io/pause.

export {};

const exit = (): void => process.exit(0);
process.on('SIGTERM', exit);
process.on('SIGINT', exit);
process.on('SIGHUP', exit);
setInterval(() => undefined, 2 ** 30);
