package accounts

import "sync"

// HoldHashSlots takes every hashing slot until the returned function is
// called (once; later calls do nothing).
func HoldHashSlots() func() {
	for range cap(hashSlots) {
		hashSlots <- struct{}{}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for range cap(hashSlots) {
				<-hashSlots
			}
		})
	}
}
