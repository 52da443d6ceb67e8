-- Connection set-up rate for sysbench 1.0: every event opens a connection, runs one query and closes it,
-- like `pgbench -C`. Run with the usual --mysql-* options: sysbench connect.lua --threads=8 --time=10 run
function thread_init()
   drv = sysbench.sql.driver()
end

function event()
   local con = drv:connect()
   con:query("SELECT 1")
   con:disconnect()
end
