# palindrome
def f(x):
    return "1" if x == x[::-1] else "0"
