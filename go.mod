module github.com/tradecache/tradecache

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/valkey-io/valkey-go v1.0.79
)

require (
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
