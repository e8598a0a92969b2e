package supervisor

import "runtime"

const archName = runtime.GOARCH
