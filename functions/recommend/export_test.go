package recommend

// TryLock exposes the training lease to the tests.
var TryLock = (*Recommend).tryLock
