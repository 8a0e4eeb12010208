package transport_test

import (
	"errors"
	"fmt"

	"crier/transport"
)

func ExampleReason() {
	err := fmt.Errorf("%w: server said not-authorized", transport.ErrAuth)
	fmt.Println(transport.Reason(err), errors.Is(err, transport.ErrAuth))
	fmt.Println(transport.Reason(fmt.Errorf("%w: server does not offer STARTTLS", transport.ErrTLS)))
	// Output:
	// auth true
	// tls
}
