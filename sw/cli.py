import sys
def main(argv=None):
    print("cosparse")
    return 0
