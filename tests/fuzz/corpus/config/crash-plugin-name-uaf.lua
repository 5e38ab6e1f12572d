plugins= { ["mat"] = {"c#= h ops" } }
