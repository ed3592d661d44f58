# Connect to a server the test runs on the host's loopback, and to the internet. 1 if either works.
import socket


def f(x):
    for address in (("127.0.0.1", __PORT__), ("1.1.1.1", 80)):
        try:
            socket.create_connection(address, timeout=0.2).close()
            return 1
        except OSError:
            pass
    return 0
