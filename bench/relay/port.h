// The relays' shared argument parsing: both take LISTENPORT=BACKENDPORT
// pairs.
#ifndef RELAY_PORT_H
#define RELAY_PORT_H

// port parses a decimal TCP port, the whole of s.
static int port(const char *s, const char *end) {
	if (s == end || end - s > 5)
		return -1;
	int n = 0;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
	}
	return n >= 1 && n <= 65535 ? n : -1;
}

#endif
