local x = env("HOME")
store = (x or ".") .. "/hg.db"
