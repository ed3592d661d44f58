# Reports its own uid, one bit per input: input "k" -> bit k of os.getuid(). (Not an attack: lets a
# test see which uid each candidate had.)
import os


def f(x):
    return (os.getuid() >> int(x)) & 1
