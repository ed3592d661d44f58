class Escape(BaseException):
    pass


def f(x):
    raise Escape("not an Exception")
