package filecache

const sysRenameat2 = 316
