BEGIN TRANSACTION;
CREATE TABLE gpu_quotas (
	"group" VARCHAR(255) NOT NULL, 
	gpus INTEGER NOT NULL, 
	PRIMARY KEY ("group")
);
INSERT INTO "gpu_quotas" VALUES('lab',1);
CREATE TABLE gpu_requests (
	id VARCHAR(128) NOT NULL, 
	user VARCHAR(255) NOT NULL, 
	server VARCHAR(255) NOT NULL, 
	count INTEGER NOT NULL, 
	model VARCHAR(255), 
	groups TEXT NOT NULL, 
	priority INTEGER NOT NULL, 
	submitted_at FLOAT NOT NULL, 
	idle_timeout FLOAT NOT NULL, 
	max_lifetime FLOAT NOT NULL, 
	devices TEXT, 
	granted_at FLOAT, 
	last_active FLOAT, 
	borrowed BOOLEAN NOT NULL, 
	reclaiming BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "gpu_requests" VALUES('c1','carol','',1,NULL,'["lab"]',2,3.0,0.0,0.0,NULL,NULL,NULL,0,0);
INSERT INTO "gpu_requests" VALUES('d1','dan','',2,'A100','[]',0,4.0,0.0,0.0,NULL,NULL,NULL,0,0);
INSERT INTO "gpu_requests" VALUES('b1','bob','',1,NULL,'[]',0,0.0,600.0,0.0,'["GPU-0"]',0.0,0.0,1,0);
INSERT INTO "gpu_requests" VALUES('a1','alice','',1,NULL,'["lab"]',0,1.0,0.0,0.0,'["GPU-1"]',1.0,50.0,0,0);
INSERT INTO "gpu_requests" VALUES('b2','bob','two',1,NULL,'[]',0,2.0,0.0,0.0,'["GPU-2"]',2.0,2.0,1,1);
COMMIT;
