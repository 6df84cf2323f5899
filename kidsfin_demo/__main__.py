"""`python -m kidsfin_demo --kids 100 --weeks 6`"""

from kidsfin_demo.cli import main

main()
